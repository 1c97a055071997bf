"""`modelship-operator`: run the operator (kopf) with its metrics and health endpoints."""

from __future__ import annotations

import argparse
import logging

import kopf
from prometheus_client import start_http_server

from . import handlers  # noqa: F401 - registers the kopf handlers
from .settings import SETTINGS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelship-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=SETTINGS.workers,
        help="reconciles running at once, per kind and per queue lane (new specs, routine)",
    )
    parser.add_argument(
        "--service-creates",
        type=int,
        default=SETTINGS.service_creates,
        help="ClusterIP Services created at once (more did not create more per second, they "
        "only waited inside the apiserver); 0: no limit",
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
    prometheus = parser.add_argument_group("autoscaling (Prometheus)")
    prometheus.add_argument(
        "--prometheus-url",
        default=SETTINGS.prometheus.url,
        help="Prometheus HTTP API base URL the autoscaler queries, e.g. http://prometheus:9090",
    )
    prometheus.add_argument(
        "--prometheus-token-file",
        default=SETTINGS.prometheus.bearer_token_file,
        help="file holding a bearer token for Prometheus (re-read on every query)",
    )
    prometheus.add_argument(
        "--prometheus-ca-file", default=SETTINGS.prometheus.ca_file, help="CA bundle for https"
    )
    prometheus.add_argument(
        "--prometheus-cert-file",
        default=SETTINGS.prometheus.cert_file,
        help="client certificate for mutual TLS",
    )
    prometheus.add_argument(
        "--prometheus-key-file",
        default=SETTINGS.prometheus.key_file,
        help="client key for mutual TLS",
    )
    prometheus.add_argument(
        "--prometheus-insecure-skip-verify",
        action="store_true",
        default=SETTINGS.prometheus.insecure_skip_verify,
        help="do not verify Prometheus' certificate",
    )
    prometheus.add_argument(
        "--prometheus-timeout",
        type=float,
        default=SETTINGS.prometheus.timeout,
        help="seconds one query may take",
    )
    prometheus.add_argument(
        "--metrics-window",
        default=SETTINGS.prometheus.rate_window,
        help="range of rate() windows in autoscaler queries (a Prometheus duration)",
    )
    prometheus.add_argument(
        "--autoscale-tick-seconds",
        type=float,
        default=SETTINGS.autoscale_tick_seconds,
        help="how often every autoscaled ModelDeployment is read and decided",
    )
    election = parser.add_argument_group("leader election (several replicas, one writes)")
    election.add_argument(
        "--leader-elect",
        action="store_true",
        default=SETTINGS.leader_elect,
        help="write only while holding a coordination.k8s.io/v1 Lease; standbys keep their "
        "caches warm and take over when the leader goes",
    )
    election.add_argument(
        "--leader-election-namespace",
        default=SETTINGS.leader_election_namespace,
        help="namespace of the Lease (default: $POD_NAMESPACE, else default)",
    )
    election.add_argument(
        "--leader-election-id",
        default=SETTINGS.leader_election_id,
        help="name of the Lease",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.autoscale_tick_seconds <= 0:
        parser.error("--autoscale-tick-seconds must be positive")
    SETTINGS.autoscale_tick_seconds = args.autoscale_tick_seconds
    SETTINGS.prometheus.url = args.prometheus_url.rstrip("/")
    SETTINGS.prometheus.bearer_token_file = args.prometheus_token_file
    SETTINGS.prometheus.ca_file = args.prometheus_ca_file
    SETTINGS.prometheus.cert_file = args.prometheus_cert_file
    SETTINGS.prometheus.key_file = args.prometheus_key_file
    SETTINGS.prometheus.insecure_skip_verify = args.prometheus_insecure_skip_verify
    SETTINGS.prometheus.timeout = args.prometheus_timeout
    SETTINGS.prometheus.rate_window = args.metrics_window
    SETTINGS.namespaces = args.namespace
    SETTINGS.workers = args.workers
    SETTINGS.service_creates = args.service_creates
    SETTINGS.resync_seconds = args.resync_seconds
    SETTINGS.version_timeout = args.model_version_timeout
    SETTINGS.leader_elect = args.leader_elect
    SETTINGS.leader_election_namespace = args.leader_election_namespace
    SETTINGS.leader_election_id = args.leader_election_id

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
