"""Prometheus: discovers model-server pods through the apiserver and scrapes them every second.

Only pods that run for real are scraped: annotated `prometheus.io/scrape: "true"`, Running, on a
node that runs processes (kwok's pods have addresses nothing listens on)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..nodes import RUNS_PROCESSES_LABEL
from .base import Layout, http_ok
from .process import Command

# Debian's package is built without Kubernetes discovery, so the toolchain builds Prometheus from
# its Go module (with the kubernetes SD); the Debian binary is the last resort.
DEBIAN_BINARY = Path("/usr/bin/prometheus")
BINARY_ENV = "MODELSHIP_PROMETHEUS_BIN"
IDENTITY = "prometheus"
USER = "modelship-prometheus"
CONFIG_FILE = "prometheus.yml"
OPERATOR_TARGETS_FILE = "prometheus-operator-targets.json"
MODEL_SERVERS_JOB = "model-servers"
OPERATOR_JOB = "modelship-operator"
OWNER_LABEL = "modelship.dev/modeldeployment"
RETENTION = "6h"


def binary(bin_dir: Path) -> Path:
    """$MODELSHIP_PROMETHEUS_BIN, else the toolchain's build, else Debian's."""
    if os.environ.get(BINARY_ENV):
        return Path(os.environ[BINARY_ENV])
    built = bin_dir / "prometheus"
    return built if built.exists() else DEBIAN_BINARY


def meta_label(prefix: str, name: str) -> str:
    """The discovery label Prometheus makes of a Kubernetes label or annotation name."""
    sanitized = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return f"__meta_kubernetes_{prefix}_{sanitized}"


def _keep(source: str, regex: str) -> dict[str, Any]:
    return {"source_labels": [source], "action": "keep", "regex": regex}


def _copy(source: str, target: str) -> dict[str, Any]:
    return {"source_labels": [source], "target_label": target}


def model_servers_job(api_server: str, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    annotation = "pod_annotation"
    return {
        "job_name": MODEL_SERVERS_JOB,
        "kubernetes_sd_configs": [
            {
                "role": "pod",
                "api_server": api_server,
                "tls_config": {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)},
                "attach_metadata": {"node": True},
            }
        ],
        "relabel_configs": [
            _keep(meta_label(annotation, "prometheus.io/scrape"), "true"),
            _keep("__meta_kubernetes_pod_phase", "Running"),
            _keep(meta_label("node_label", RUNS_PROCESSES_LABEL), "true"),
            {
                "source_labels": [
                    "__meta_kubernetes_pod_ip",
                    meta_label(annotation, "prometheus.io/port"),
                ],
                "regex": r"(.+);(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {
                "source_labels": [meta_label(annotation, "prometheus.io/path")],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
            },
            _copy("__meta_kubernetes_namespace", "namespace"),
            _copy("__meta_kubernetes_pod_name", "pod"),
            _copy(meta_label("pod_label", OWNER_LABEL), "modeldeployment"),
        ],
    }


def operator_job(targets_file: Path) -> dict[str, Any]:
    """The operator runs on the host; its metrics port is written to a file when it starts."""
    return {
        "job_name": OPERATOR_JOB,
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
    }


def prometheus_config(
    api_server: str, ca: Path, cert: Path, key: Path, operator_targets: Path
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            model_servers_job(api_server, ca, cert, key),
            operator_job(operator_targets),
        ],
    }


def operator_targets(port: int | None) -> list[dict[str, Any]]:
    """The file_sd document for the operator's metrics port (none while it is not running)."""
    if port is None:
        return []
    return [{"targets": [f"127.0.0.1:{port}"], "labels": {"component": "operator"}}]


def write_operator_targets(root: Path, port: int | None) -> None:
    path = root / OPERATOR_TARGETS_FILE
    # Prometheus watches the file: replace it whole so it never reads half a document.
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(operator_targets(port)))
    partial.replace(path)


def prometheus_rbac(user: str = USER) -> list[dict[str, Any]]:
    """What pod discovery with node metadata needs: read pods, nodes and namespaces."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "modelship-local-prometheus"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "nodes", "namespaces"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "modelship-local-prometheus"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "modelship-local-prometheus",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    return [role, binding]


def prometheus_command(binary: Path, config: Path, data: Path, port: int) -> Command:
    return Command(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.retention.time={RETENTION}",
            "--web.enable-lifecycle",
        ]
    )


@dataclass(frozen=True)
class Prometheus:
    name: str = "prometheus"
    port_names: tuple[str, ...] = ("prometheus",)

    def prepare(self, layout: Layout) -> None:
        (layout.root / "prometheus").mkdir(parents=True, exist_ok=True)
        if not (layout.root / OPERATOR_TARGETS_FILE).exists():
            write_operator_targets(layout.root, None)
        config = prometheus_config(
            layout.server,
            layout.pki / "ca.crt",
            layout.pki / f"{IDENTITY}.crt",
            layout.pki / f"{IDENTITY}.key",
            layout.root / OPERATOR_TARGETS_FILE,
        )
        (layout.root / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self, layout: Layout) -> Command:
        return prometheus_command(
            binary(layout.bin_dir),
            layout.root / CONFIG_FILE,
            layout.root / "prometheus",
            layout.ports["prometheus"],
        )

    def ready(self, layout: Layout) -> bool:
        return http_ok(f"http://127.0.0.1:{layout.ports['prometheus']}/-/ready")
