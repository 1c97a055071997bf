"""`modelship-operator`: run the operator (kopf) with its metrics and health endpoints."""

from __future__ import annotations

import argparse
import logging

import kopf
from prometheus_client import start_http_server

from . import handlers  # noqa: F401 - registers the kopf handlers
from .settings import SETTINGS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="modelship-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all",
    )
    parser.add_argument(
        "--workers", type=int, default=SETTINGS.workers, help="reconciles running at once"
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=SETTINGS.resync_seconds,
        help="how often every object is re-checked even without events",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=SETTINGS.metrics_port,
        help="Prometheus metrics port (0 disables)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=SETTINGS.health_port,
        help="liveness endpoint port (/healthz)",
    )
    parser.add_argument(
        "--model-version-timeout",
        type=float,
        default=SETTINGS.version_timeout,
        help="seconds to wait when asking a ready pod which model version it "
        "serves (status.modelVersion); 0 never asks",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    SETTINGS.workers = args.workers
    SETTINGS.resync_seconds = args.resync_seconds
    SETTINGS.version_timeout = args.model_version_timeout

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
