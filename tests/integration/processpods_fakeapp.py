"""A tiny container program for the process-pods tests: it exits, serves health checks, writes
files and reacts to SIGTERM as the test's arguments say."""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit", type=int, default=None, help="exit at once with this code")
    parser.add_argument("--check", type=Path, help="exec probe: succeed when this file exists")
    parser.add_argument("--touch", type=Path, help="create this file and exit 0")
    parser.add_argument("--serve", type=int, default=0, help="HTTP port on $POD_IP")
    parser.add_argument("--healthy-file", type=Path)
    parser.add_argument("--healthy-for", type=float, default=0)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--on-term", type=Path, help="write here what was seen at SIGTERM")
    parser.add_argument("--after", type=Path, help="file whose presence --on-term records")
    parser.add_argument("--show-env", nargs="*", default=[])
    parser.add_argument("--show-file", action="append", type=Path, default=[])
    args = parser.parse_args()

    if args.check is not None:
        return 0 if args.check.exists() else 1
    if args.touch is not None:
        args.touch.write_text("touched\n")
        return 0
    for name in args.show_env:
        print(f"env {name}={os.environ.get(name, '<unset>')}", flush=True)
    for path in args.show_file:
        print(f"file {path}={path.read_text() if path.exists() else '<missing>'}", flush=True)
    if args.exit is not None:
        print(f"exiting with {args.exit}", flush=True)
        return int(args.exit)

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        seen = "after" if args.after is not None and args.after.exists() else "before"
        if args.on_term is not None:
            args.on_term.write_text(f"SIGTERM {seen}\n")
        print(f"got SIGTERM ({seen})", flush=True)
        if not args.ignore_term:
            os._exit(0)
        print("ignoring SIGTERM", flush=True)

    signal.signal(signal.SIGTERM, on_term)
    if args.healthy_file is not None:
        args.healthy_file.write_text("ok\n")
        if args.healthy_for:
            threading.Timer(args.healthy_for, args.healthy_file.unlink).start()
    if args.serve:
        server = http.server.ThreadingHTTPServer(
            (os.environ["POD_IP"], args.serve), http.server.SimpleHTTPRequestHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"running as pid {os.getpid()}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
