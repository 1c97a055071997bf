"""Operator settings, from the command line (main.py) with environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


@dataclass
class PrometheusSettings:
    """Where the autoscaler reads metrics; empty url: autoscaling reports it cannot run."""

    url: str = field(default_factory=lambda: _env("MODELSHIP_PROMETHEUS_URL"))
    bearer_token_file: str = field(default_factory=lambda: _env("MODELSHIP_PROMETHEUS_TOKEN_FILE"))
    ca_file: str = field(default_factory=lambda: _env("MODELSHIP_PROMETHEUS_CA_FILE"))
    cert_file: str = field(default_factory=lambda: _env("MODELSHIP_PROMETHEUS_CERT_FILE"))
    key_file: str = field(default_factory=lambda: _env("MODELSHIP_PROMETHEUS_KEY_FILE"))
    insecure_skip_verify: bool = field(
        default_factory=lambda: _env("MODELSHIP_PROMETHEUS_INSECURE") == "true"
    )
    timeout: float = field(
        default_factory=lambda: float(_env("MODELSHIP_PROMETHEUS_TIMEOUT", "2.0"))
    )
    # Range of rate() and histogram_quantile() windows: 3 scrapes at a 1 s interval (the local
    # cluster's). A step in load reads about 0.7 s sooner than with 5s (BENCHMARKS.md).
    rate_window: str = field(default_factory=lambda: _env("MODELSHIP_METRICS_WINDOW", "3s"))


@dataclass
class Settings:
    namespaces: list[str] = field(default_factory=list)  # watched; empty: all
    workers: int = int(os.environ.get("MODELSHIP_WORKERS", "16"))
    # ClusterIP Services created at once (controller/reconcile.py CreateLimits; 0: no limit).
    service_creates: int = int(os.environ.get("MODELSHIP_SERVICE_CREATES", "4"))
    resync_seconds: float = float(os.environ.get("MODELSHIP_RESYNC_SECONDS", "300"))
    metrics_port: int = int(os.environ.get("MODELSHIP_METRICS_PORT", "8080"))
    health_port: int = int(os.environ.get("MODELSHIP_HEALTH_PORT", "8081"))
    # How long to wait for a model server's answer about the version it serves (0: never ask).
    version_timeout: float = float(os.environ.get("MODELSHIP_VERSION_TIMEOUT", "1.0"))
    # One autoscaler tick: every autoscaled ModelDeployment is read and decided at once.
    autoscale_tick_seconds: float = float(os.environ.get("MODELSHIP_AUTOSCALE_TICK_SECONDS", "1"))
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    # Leader election (leader.py): off for a single operator, on in the chart's replicas.
    leader_elect: bool = _env("MODELSHIP_LEADER_ELECT") == "true"
    leader_election_namespace: str = _env("POD_NAMESPACE") or "default"
    leader_election_id: str = "modelship-operator"


SETTINGS = Settings()
