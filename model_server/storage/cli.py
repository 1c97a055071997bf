"""`modelship` command line. `fetch` is the storage initializer an init container runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from .errors import FetchError, redact
from .fetch import fetch
from .limits import SETTINGS, Limits, deadline_passed, limits_from
from .uri import display_uri

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelship", description="modelship tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch_cmd = commands.add_parser(
        "fetch",
        help="download a model into a TF Serving base path",
        description="Download a model from s3://, gs://, http(s):// or file:// into DIR as "
        "numeric version folders, each a SavedModel. Credentials come from the environment.",
    )
    fetch_cmd.add_argument("--uri", required=True, help="where the model is (storageUri)")
    fetch_cmd.add_argument("--dest", required=True, type=Path, help="folder to fill")
    fetch_cmd.add_argument(
        "--termination-log",
        type=Path,
        default=None,
        help=f"file that receives the error message (default {DEFAULT_TERMINATION_LOG} when "
        "it exists and is writable)",
    )
    defaults = Limits()
    for name, (flag, variable, _, unit) in SETTINGS.items():
        fetch_cmd.add_argument(
            flag,
            dest=name,
            default=None,
            metavar=unit.split()[0].upper(),
            help=f"{unit}; default ${variable}, else {getattr(defaults, name)}",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {name: getattr(args, name) for name in SETTINGS}
    try:
        limits = limits_from(flags, os.environ)
    except FetchError as e:
        return fail(str(e), args.termination_log)
    with _signals_raise(limits.deadline):
        return run_fetch(args.uri, args.dest, args.termination_log, limits)


class Terminated(BaseException):
    """SIGTERM arrived (the pod is being deleted). A BaseException, so no library's `except
    Exception` swallows it on its way to the fetch's cleanup."""


class DeadlinePassed(BaseException):
    """The deadline's alarm rang while a read was blocked (the meter catches it between reads)."""


@contextmanager
def _signals_raise(deadline: float) -> Iterator[None]:
    """Turn SIGTERM and the deadline's alarm into exceptions, so the staging folder is removed and
    the destination left empty, instead of the process dying mid-write or blocking in a read a
    client library does not time out."""

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise DeadlinePassed

    previous = signal.signal(signal.SIGTERM, terminated), signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, deadline)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGALRM, previous[1])


def run_fetch(
    uri: str, dest: Path, termination_log: Path | None, limits: Limits | None = None
) -> int:
    print(f"fetching {redact(display_uri(uri))} into {dest}", flush=True)
    try:
        result = fetch(uri, dest, limits=limits)
    except FetchError as e:
        return fail(str(e), termination_log)
    except Terminated:
        return fail(f"cannot fetch {display_uri(uri)}: stopped by SIGTERM", termination_log)
    except DeadlinePassed:
        message = f"cannot read {display_uri(uri)}: {deadline_passed(limits or Limits())}"
        return fail(message, termination_log)
    except Exception as e:  # a bug or an unforeseen library error: still one line, no traceback
        message = f"cannot fetch {display_uri(uri)}: unexpected {type(e).__name__}: {e}"
        return fail(message, termination_log)
    mib = result.bytes / (1 << 20)
    print(
        f"fetched {result.files} files, {mib:.1f} MiB in {result.seconds:.1f} s; "
        f"versions {', '.join(result.versions)}",
        flush=True,
    )
    return 0


def fail(message: str, termination_log: Path | None) -> int:
    line = redact(message)
    print(line, file=sys.stderr, flush=True)
    target = termination_log or _default_termination_log()
    if target is not None:
        try:
            target.write_text(line + "\n")
        except OSError as e:
            print(f"(could not write {target}: {e.strerror})", file=sys.stderr)
    return 1


def _default_termination_log() -> Path | None:
    path = DEFAULT_TERMINATION_LOG
    return path if path.exists() and os.access(path, os.W_OK) else None


if __name__ == "__main__":
    sys.exit(main())
