"""Installing modelship into the local cluster: the Helm chart, and the operator as a process on
the host in place of the chart's Deployment (kwok's pods run nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .components import prometheus
from .components.apiserver import OPERATOR_NAMESPACE
from .components.process import Command, free_port

if TYPE_CHECKING:
    from .cluster import LocalCluster

OPERATOR = "operator"


def helm(
    cluster: LocalCluster, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )


def install_chart(cluster: LocalCluster, chart: Path) -> None:
    """The chart's RBAC and ServiceAccount; its operator Deployment scaled to zero, since the
    operator process on the host takes its place. The CRDs come from crds/ (`install_crds`), the
    admission policies from admission/ (`install_admission`)."""
    helm(
        cluster,
        "upgrade",
        "--install",
        "modelship",
        str(chart),
        f"--namespace={OPERATOR_NAMESPACE}",
        "--create-namespace",
        "--set",
        "replicas=0,crds.install=false,admissionPolicy.enabled=false",
        "--wait",
    )


def operator_command(
    python: str,
    kubeconfig: Path,
    metrics_port: int,
    health_port: int,
    prometheus_url: str | None,
    extra_args: tuple[str, ...],
    base_env: dict[str, str],
) -> Command:
    """`modelship-operator` as the chart's ServiceAccount; the autoscaler asks the cluster's
    Prometheus when there is one. `extra_args` come last, so they can override."""
    argv = [
        python,
        "-m",
        "modelship_operator.main",
        f"--metrics-port={metrics_port}",
        f"--health-port={health_port}",
    ]
    if prometheus_url:
        argv.append(f"--prometheus-url={prometheus_url}")
    return Command([*argv, *extra_args], env={**base_env, "KUBECONFIG": str(kubeconfig)})


def start_operator(cluster: LocalCluster, *extra_args: str) -> None:
    """Run the operator; its log is logs/operator.log, its metrics scraped by Prometheus."""
    cluster.ports["operator-metrics"] = free_port()
    cluster.ports["operator-health"] = free_port()
    with_prometheus = "prometheus" in cluster.ports
    command = operator_command(
        sys.executable,
        cluster.root / "pki" / "operator.kubeconfig",
        cluster.ports["operator-metrics"],
        cluster.ports["operator-health"],
        cluster.prometheus_url if with_prometheus else None,
        extra_args,
        dict(os.environ),
    )
    cluster.spawn(OPERATOR, command)
    if with_prometheus:
        prometheus.write_operator_targets(cluster.root, cluster.ports["operator-metrics"])


def kill_operator(cluster: LocalCluster, sig: int = signal.SIGKILL) -> None:
    """Stop the operator at once (SIGKILL: no clean-up, as a crash or OOM kill would)."""
    cluster.supervisor.kill(OPERATOR, sig)
    cluster.save_state()
