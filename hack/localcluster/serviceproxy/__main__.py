"""python -m modelship_localcluster.serviceproxy --kubeconfig=PATH --listen=127.0.0.1:PORT"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .app import serve
from .hosts import split_authority
from .server import ProxySettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modelship_localcluster.serviceproxy",
        description="HTTP forward proxy (and CONNECT tunnel) to the ready pods of a Service, "
        "named <svc>.<ns>.svc[.cluster.local]:PORT, <svc>.<ns>:PORT or CLUSTER-IP:PORT. "
        "A client connection stays with the endpoint picked for its first request.",
    )
    parser.add_argument("--kubeconfig", help="the cluster to watch (default: $KUBECONFIG)")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="address:port to listen on")
    parser.add_argument(
        "--head-timeout",
        type=float,
        default=30.0,
        help="seconds a client has to send its request head (then 408)",
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=5.0, help="seconds to connect to a pod"
    )
    parser.add_argument(
        "--log-connections", action="store_true", help="one log line per connection routed"
    )
    args = parser.parse_args(argv)
    listen = split_authority(args.listen, 0)
    if listen is None or listen[1] == 0:
        parser.error(f"--listen needs address:port, got {args.listen!r}")
    args.host, args.port = listen
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    # The watches say themselves when the apiserver is away; urllib3's retries would repeat it.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    settings = ProxySettings(
        head_timeout=args.head_timeout,
        connect_timeout=args.connect_timeout,
        log_connections=args.log_connections,
    )
    try:
        import uvloop  # noqa: PLC0415  (optional: a faster event loop when installed)
    except ImportError:
        asyncio.run(serve(args.kubeconfig, args.host, args.port, settings))
    else:
        uvloop.run(serve(args.kubeconfig, args.host, args.port, settings))


if __name__ == "__main__":
    main()
