"""The chart's optional objects (PodMonitors, ServiceMonitor, PrometheusRules, NetworkPolicy,
Grafana dashboard) against the real apiserver with the real prometheus-operator CRDs (server-side
dry run on the local cluster); the rules, alerts and dashboard queries against the real
Prometheus' rule checker and rule unit tests."""

from __future__ import annotations

import json
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
OPTIONAL_KINDS = MONITORING_KINDS | {"Service", "NetworkPolicy", "ConfigMap"}
ALL_ON = (
    "monitoring.podMonitor.enabled=true,monitoring.serviceMonitor.enabled=true,"
    "monitoring.prometheusRule.enabled=true,monitoring.labels.release=kps,"
    "monitoring.alerts.enabled=true,monitoring.grafanaDashboard.enabled=true,"
    "networkPolicy.enabled=true"
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
    docs = _render(
        ns,
        "monitoring.podMonitor.interval=2s,monitoring.prometheusRule.rateWindow=1m,"
        f"networkPolicy.metricsFromNamespaces={{{ns}}},networkPolicy.apiServer.cidrs={{10.0.0.1/32}},"
        "networkPolicy.prometheus.cidrs={10.1.0.0/16},networkPolicy.prometheus.namespaces={monitoring}",
    )
    optional = [d for d in docs if d["kind"] in OPTIONAL_KINDS]
    names = sorted((d["kind"], d["metadata"]["name"]) for d in optional)
    assert names == [
        ("ConfigMap", "ms-dashboard"),
        ("NetworkPolicy", "ms-operator"),
        ("PodMonitor", "ms-model-servers"),
        ("PodMonitor", "ms-training"),
        ("PrometheusRule", "ms-alerts"),
        ("PrometheusRule", "ms-autoscaling"),
        ("Service", "ms-operator-metrics"),
        ("ServiceMonitor", "ms-operator"),
    ]
    for doc in optional:
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
    (rule,) = [d for d in _render("ops") if d["metadata"]["name"] == "ms-autoscaling"]
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


def _promtool() -> str:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return promtool


def _promtool_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, check=False, timeout=60, cwd=cwd
    )


def _alert_groups(*values: str) -> list[dict[str, Any]]:
    rule = next(d for d in _render("ops", *values) if d["metadata"]["name"] == "ms-alerts")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def test_alerts_parse_with_promtool(tmp_path: Path) -> None:
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"groups": _alert_groups()}))
    result = _promtool_run("check", "rules", "alerts.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rules found" in result.stdout, result.stdout


def test_alerts_fire_when_the_operator_is_down_and_a_model_is_slow(tmp_path: Path) -> None:
    """promtool's rule unit tests: the real rule engine evaluates the rendered alerts on series
    shaped like the operator's `up` and the model server's latency histogram (microseconds)."""
    groups = _alert_groups(
        "monitoring.alerts.p99LatencyMs=100,monitoring.alerts.p99For=2m,"
        "monitoring.alerts.operatorDownFor=3m,monitoring.alerts.labels.severity=page,"
        "monitoring.alerts.noSingleLeaderFor=2m,monitoring.alerts.notReadyFor=3m"
    )
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"groups": groups}))
    bucket = (
        ':tensorflow:serving:request_latency_bucket{namespace="ml",modeldeployment="%s",le="%s"}'
    )
    # fast: every request under 50 ms; slow: 10 requests/min, all between 200 and 500 ms.
    series = [
        {"series": 'up{job="ms-operator-metrics",namespace="ops",pod="a"}', "values": "1x4 0x10"},
        # Two replicas: a leads until minute 4; b takes over only at minute 8 (from minute 5 to 7
        # none leads, 2 minutes and more: the alert fires at minute 7, not before).
        {"series": _leader("a"), "values": "1x4 0x10"},
        {"series": _leader("b"), "values": "0x7 1x10"},
        # The operator's per-object gauges: "web" is not Ready from minute 3 on (the alert fires
        # 3 minutes later); "train" fails at minute 5 (the alert fires at once).
        {
            "series": _operator("modelship_modeldeployment_ready", 'modeldeployment="web"'),
            "values": "1x2 0x15",
        },
        {
            "series": _operator("modelship_modeldeployment_ready", 'modeldeployment="ok"'),
            "values": "1x17",
        },
        {
            "series": _operator(
                "modelship_trainingjob_state", 'trainingjob="train",state="Failed"'
            ),
            "values": "0x4 1x10",
        },
        {
            "series": _operator(
                "modelship_trainingjob_state", 'trainingjob="train",state="Running"'
            ),
            "values": "1x4 0x10",
        },
        {"series": bucket % ("fast", "50000"), "values": "0+60x20"},
        {"series": bucket % ("fast", "+Inf"), "values": "0+60x20"},
        {"series": bucket % ("slow", "200000"), "values": "0x20"},
        {"series": bucket % ("slow", "500000"), "values": "0+10x20"},
        {"series": bucket % ("slow", "+Inf"), "values": "0+10x20"},
    ]
    tests = {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "6m",
                        "alertname": "ModelshipOperatorNoSingleLeader",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "7m",
                        "alertname": "ModelshipOperatorNoSingleLeader",
                        "exp_alerts": [
                            {
                                "exp_labels": {"namespace": "ops", "severity": "page"},
                                "exp_annotations": {
                                    "summary": "The modelship operator replicas do not have "
                                    "exactly one leader.",
                                    "description": _annotation(
                                        groups, "ModelshipOperatorNoSingleLeader"
                                    ).replace("{{ $value }}", "0"),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "9m",
                        "alertname": "ModelshipOperatorNoSingleLeader",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "ModelshipModelDeploymentNotReady",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "6m",
                        "alertname": "ModelshipModelDeploymentNotReady",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "namespace": "ml",
                                    "modeldeployment": "web",
                                    "severity": "page",
                                },
                                "exp_annotations": {
                                    "summary": "A ModelDeployment has not been Ready for 3m.",
                                    "description": "ModelDeployment ml/web has not been Ready "
                                    "for 3m; `kubectl describe` it for the reason in its Ready "
                                    "condition.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "4m",
                        "alertname": "ModelshipTrainingJobFailed",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "ModelshipTrainingJobFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "namespace": "ml",
                                    "trainingjob": "train",
                                    "severity": "page",
                                },
                                "exp_annotations": {
                                    "summary": "A TrainingJob failed.",
                                    "description": "TrainingJob ml/train failed; its Stalled "
                                    "condition says why (backoff limit, deadline or a "
                                    "non-retryable exit code).",
                                },
                            }
                        ],
                    },
                    # up turns 0 at minute 5; firing 3 minutes later, not before.
                    {"eval_time": "7m", "alertname": "ModelshipOperatorDown", "exp_alerts": []},
                    {
                        "eval_time": "9m",
                        "alertname": "ModelshipOperatorDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {"namespace": "ops", "severity": "page"},
                                "exp_annotations": {
                                    "summary": "No modelship operator replica is up.",
                                    "description": _annotation(groups, "ModelshipOperatorDown"),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "12m",
                        "alertname": "ModelshipModelLatencyHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "namespace": "ml",
                                    "modeldeployment": "slow",
                                    "severity": "page",
                                },
                                "exp_annotations": {
                                    "summary": "A model's p99 latency is over 100 ms.",
                                    "description": "ModelDeployment ml/slow answers 99% of "
                                    "requests within 497 ms, over the 100 ms threshold, for 2m.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool_run("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _operator(metric: str, labels: str) -> str:
    return f'{metric}{{job="ms-operator-metrics",namespace="ml",pod="a",{labels}}}'


def _leader(pod: str) -> str:
    return f'modelship_operator_leader{{job="ms-operator-metrics",namespace="ops",pod="{pod}"}}'


def _annotation(groups: list[dict[str, Any]], alert: str) -> str:
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    text: str = rule["annotations"]["description"]
    return text


def test_dashboard_has_the_four_panels_and_its_queries_parse(tmp_path: Path) -> None:
    (config,) = [d for d in _render("ops") if d["kind"] == "ConfigMap"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["modelship.json"])
    panels = {p["title"]: p["targets"][0]["expr"] for p in dashboard["panels"]}
    assert set(panels) == {
        "Requests per second",
        "p99 request latency",
        "Model-server replicas (scraped pods)",
        "TrainingJob progress",
    }
    assert ":tensorflow:serving:request_count" in panels["Requests per second"]
    assert ":tensorflow:serving:request_latency_bucket" in panels["p99 request latency"]
    assert "modelship_training_step" in panels["TrainingJob progress"]
    # Grafana's variables as Prometheus would see them after substitution.
    rules = [
        {"record": f"dashboard:panel{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(panels.values())
    ]
    rules = [{**r, "expr": r["expr"].replace("$namespace", ".*")} for r in rules]
    (tmp_path / "panels.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = _promtool_run("check", "rules", "panels.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
