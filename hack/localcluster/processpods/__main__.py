"""`python -m modelship_localcluster.processpods`: run the pods bound to some nodes as processes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .agent import Agent
from .backoff import Backoff
from .images import default_images, extra_image
from .ipam import DEFAULT_RANGE, AddressPool
from .kube import ApiError, Kube
from .node import NodeKeeper
from .pod import NodeRuntime
from .sandbox import Sandbox
from .statefile import STATE_FILE, ProcessRecords, kill_leftovers

log = logging.getLogger("processpods")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelship_localcluster.processpods",
        description="A kubelet that runs the pods bound to its nodes as processes on this machine.",
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument(
        "--node", action="append", required=True, help="a Node to serve (repeatable)"
    )
    parser.add_argument(
        "--workdir", required=True, type=Path, help="pod folders and the process state file"
    )
    parser.add_argument(
        "--logs", required=True, type=Path, help="<namespace>_<pod>_<container>.log files"
    )
    parser.add_argument(
        "--extra-image",
        action="append",
        default=[],
        metavar="REPO=PROGRAM",
        help="also run image REPO (any tag) as PROGRAM (repeatable)",
    )
    parser.add_argument("--pod-cidr", default=DEFAULT_RANGE, help="pod addresses (loopback)")
    parser.add_argument(
        "--backoff-base", type=float, default=10.0, help="first restart back-off, seconds"
    )
    parser.add_argument("--backoff-cap", type=float, default=300.0, help="longest back-off")
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        help="seconds between SIGTERM and SIGKILL for the containers when this stops",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    images = default_images()
    try:
        images.update(extra_image(spec) for spec in args.extra_image)
    except ValueError as err:
        build_parser().error(str(err))
    workdir = args.workdir.resolve()
    logs = args.logs.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)

    killed = kill_leftovers(workdir / STATE_FILE)
    if killed:
        log.info("killed %d process group(s) left by an earlier run", len(killed))

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping every container", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    runtime = NodeRuntime(
        kube=Kube.from_kubeconfig(args.kubeconfig),
        images=images,
        addresses=AddressPool(args.pod_cidr),
        backoff=Backoff(args.backoff_base, args.backoff_cap),
        workdir=workdir,
        logs=logs,
        records=ProcessRecords(workdir / STATE_FILE),
        shutdown_grace=args.shutdown_grace,
        sandbox=Sandbox.prepare(workdir),
    )
    agent = Agent(runtime, args.node)
    while not stop.is_set():
        try:
            agent.remove_stale_folders()
            break
        except ApiError as err:
            log.warning("waiting for the API: %s", err)
            stop.wait(2)
    keeper = NodeKeeper(runtime.kube, args.node)
    keeper.start()
    agent.start()
    log.info("serving nodes %s; images: %s", ", ".join(args.node), ", ".join(sorted(images)))
    while not stop.is_set():
        stop.wait(1)
    started = time.monotonic()
    agent.stop()
    keeper.stop()
    log.info("stopped in %.1fs", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
