"""The chart's monitoring objects against the real prometheus-operator CRDs (server-side dry run
on the local cluster) and the recording rules against the real Prometheus' rule checker."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import new_namespace
from modelship_localcluster.cluster import LocalCluster, default_bin_dir
from toolchain_crds import prometheus_operator_crd

CHART = Path(__file__).resolve().parents[2] / "charts" / "modelship"
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
ALL_ON = (
    "monitoring.podMonitor.enabled=true,monitoring.serviceMonitor.enabled=true,"
    "monitoring.prometheusRule.enabled=true,monitoring.labels.release=kps"
)


def _render(namespace: str, *values: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            str(default_bin_dir() / "helm"),
            "template",
            "ms",
            str(CHART),
            f"--namespace={namespace}",
            "--kube-version=1.36.0",
            "--set",
            ",".join((ALL_ON, *values)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_monitoring_objects_pass_the_prometheus_operator_crds(cluster: LocalCluster) -> None:
    crds = [
        prometheus_operator_crd(p) for p in ("podmonitors", "servicemonitors", "prometheusrules")
    ]
    for crd in crds:
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    for plural in ("podmonitors", "servicemonitors", "prometheusrules"):
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{plural}.monitoring.coreos.com",
            "--timeout=60s",
        )
    ns = new_namespace(cluster, "monitoring")
    docs = _render(ns, "monitoring.podMonitor.interval=2s,monitoring.prometheusRule.rateWindow=1m")
    monitoring = [d for d in docs if d["kind"] in MONITORING_KINDS or d["kind"] == "Service"]
    assert {d["kind"] for d in monitoring} == MONITORING_KINDS | {"Service"}
    for doc in monitoring:
        result = cluster.kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
            input_text=yaml.safe_dump(doc),
            check=False,
        )
        assert result.returncode == 0, f"{doc['kind']}: {result.stderr}"


def test_recording_rules_parse_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.skip("promtool is not installed (Debian package prometheus)")
    (rule,) = [d for d in _render("ops") if d["kind"] == "PrometheusRule"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 rules found" in result.stdout, result.stdout
