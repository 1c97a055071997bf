"""The Helm chart lints, renders, rejects bad values by name, and installs on the real cluster."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import wait_for
from modelship_localcluster import product
from modelship_localcluster.cluster import OPERATOR_USER, LocalCluster, default_bin_dir
from modelship_operator.resources.names import HEALTH_PORT, REST_PORT
from modelship_operator.resources.trainingjob.names import METRICS_PORT

CHART = Path(__file__).resolve().parents[2] / "charts" / "modelship"
KUBE_VERSION = "--kube-version=1.36.0"


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(default_bin_dir() / "helm"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_chart_lints_cleanly() -> None:
    result = _helm("lint", "--strict", KUBE_VERSION, str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_renders_rbac_deployment_and_crds() -> None:
    result = _helm(
        "template",
        "ms",
        str(CHART),
        "--namespace=ops",
        "--include-crds",
        KUBE_VERSION,
        "--set",
        "watchNamespaces={ml,research}",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicyBinding",
    ]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--namespace=ml" in container["args"]
    assert "--namespace=research" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "ops"
    for crd in (d for d in docs if d["kind"] == "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_are_templates_that_can_be_left_out() -> None:
    """Templates (upgraded by `helm upgrade`), not files in crds/ (installed once, never again);
    crds.install=false leaves them to kubectl or GitOps."""
    assert not (CHART / "crds").exists()
    off = _helm("template", "ms", str(CHART), KUBE_VERSION, "--set", "crds.install=false")
    assert off.returncode == 0, off.stderr
    assert "CustomResourceDefinition" not in off.stdout
    on = _helm("template", "ms", str(CHART), KUBE_VERSION)
    crds = [
        d for d in yaml.safe_load_all(on.stdout) if d and d["kind"] == "CustomResourceDefinition"
    ]
    # The same CRDs as crds/, the generator's one source, apart from Helm's labels and policy.
    for crd in crds:
        plain = yaml.safe_load(
            (CHART.parents[1] / "crds" / f"{crd['metadata']['name']}.yaml").read_text()
        )
        assert crd["spec"] == plain["spec"]
        assert plain["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()


ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def test_admission_policies_are_admission_folder_named_after_the_release() -> None:
    """The same policies and bindings as admission/ (the generator's one source), named after
    the release; admissionPolicy.enabled=false leaves them out."""
    plain = [
        d
        for d in yaml.safe_load_all(
            (CHART.parents[1] / "admission" / "requests-within-limits.yaml").read_text()
        )
        if d
    ]
    rendered = {
        (d["kind"], d["metadata"]["name"]): d for d in _render() if d["kind"] in ADMISSION_KINDS
    }
    assert len(rendered) == len(plain) == 4
    for doc in plain:
        name = "ms" + doc["metadata"]["name"].removeprefix("modelship")
        chart_doc = rendered[(doc["kind"], name)]
        spec = chart_doc["spec"]
        if "policyName" in spec:
            assert spec["policyName"] == name
            spec = {**spec, "policyName": doc["spec"]["policyName"]}
        assert spec == doc["spec"]
        assert chart_doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    off = _render("admissionPolicy.enabled=false")
    assert not [d for d in off if d["kind"] in ADMISSION_KINDS]


def _render(*values: str) -> list[dict[str, Any]]:
    args = [a for v in values for a in ("--set", v)]
    result = _helm("template", "ms", str(CHART), "--namespace=ops", KUBE_VERSION, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_two_replicas_elect_a_leader_spread_over_nodes_under_a_pdb() -> None:
    docs = _render()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--leader-elect" in container["args"]
    assert "--leader-election-namespace=$(POD_NAMESPACE)" in container["args"]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update", "patch"],
        }
    ]
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_one_replica_without_leader_election_is_recreated() -> None:
    docs = _render("leaderElection.enabled=false,replicas=1,spreadReplicasAcrossNodes=false")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert "affinity" not in pod
    assert not any(a.startswith("--leader") for a in pod["containers"][0]["args"])
    assert "Role" not in {d["kind"] for d in docs}


def test_prometheus_address_and_secrets_reach_the_operator() -> None:
    result = _helm(
        "template",
        "ms",
        str(CHART),
        KUBE_VERSION,
        "--set",
        "prometheus.url=https://prom.monitoring:9090,prometheus.bearerTokenSecret.name=prom-token,"
        "prometheus.tlsSecret.name=prom-tls,prometheus.tlsSecret.clientCertificate=true,"
        "autoscaler.tickSeconds=2",
    )
    assert result.returncode == 0, result.stderr
    deployment = next(
        d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert "--prometheus-url=https://prom.monitoring:9090" in args
    assert "--autoscale-tick-seconds=2" in args
    token = next(a for a in args if a.startswith("--prometheus-token-file="))
    ca = next(a for a in args if a.startswith("--prometheus-ca-file="))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
    assert token.split("=", 1)[1].startswith(mounts["prometheus-token"] + "/")
    assert ca.split("=", 1)[1].startswith(mounts["prometheus-tls"] + "/")
    assert volumes == {"prometheus-token": "prom-token", "prometheus-tls": "prom-tls"}
    # The real operator accepts every flag the chart renders.
    parsed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from modelship_operator.main import build_parser; "
            "build_parser().parse_args(sys.argv[1:])",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr


def _monitoring_objects(*extra: str) -> dict[str, dict[str, object]]:
    result = _helm(
        "template",
        "ms",
        str(CHART),
        "--namespace=ops",
        KUBE_VERSION,
        "--set",
        "monitoring.podMonitor.enabled=true,monitoring.serviceMonitor.enabled=true,"
        "monitoring.prometheusRule.enabled=true",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    # The training pods' PodMonitor has a test of its own.
    return {d["kind"]: d for d in docs if d["metadata"]["name"] != "ms-training"}


def test_training_pod_monitor_labels_progress_by_trainingjob() -> None:
    result = _helm(
        "template", "ms", str(CHART), KUBE_VERSION, "--set", "monitoring.podMonitor.enabled=true"
    )
    assert result.returncode == 0, result.stderr
    (monitor,) = [
        d for d in yaml.safe_load_all(result.stdout) if d and d["metadata"]["name"] == "ms-training"
    ]
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "modelship-training"
    }
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets["trainingjob"] == ["__meta_kubernetes_pod_label_modelship_dev_trainingjob"]


def test_network_policy_reaches_the_ports_the_operator_uses() -> None:
    """Egress to the model servers' REST port and the training pods' metrics port, as the
    operator's builders name them; nothing at all when off."""
    off = _helm("template", "ms", str(CHART), KUBE_VERSION)
    assert "NetworkPolicy" not in {d["kind"] for d in yaml.safe_load_all(off.stdout) if d}
    docs = _monitoring_objects("--set", "networkPolicy.enabled=true")
    policy: dict[str, Any] = docs["NetworkPolicy"]  # type: ignore[assignment]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {REST_PORT, HEALTH_PORT, METRICS_PORT, 6443, 53, 9090} <= egress_ports
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"metrics", "health"}


def test_monitoring_objects_are_off_by_default() -> None:
    result = _helm("template", "ms", str(CHART), KUBE_VERSION)
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout) if d}
    assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule", "Service"}


def test_pod_monitor_gives_the_labels_the_autoscaler_groups_by() -> None:
    docs = _monitoring_objects("--set", "monitoring.podMonitor.interval=2s")
    spec: dict[str, Any] = docs["PodMonitor"]["spec"]  # type: ignore[assignment]
    assert spec["namespaceSelector"] == {"any": True}
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "modelship-server"}
    # One endpoint per port a pod may serve plain-HTTP metrics on (the operator's
    # monitoring_port), each keeping only the pods whose prometheus.io/port annotation names it.
    keeps = {}
    for endpoint in spec["podMetricsEndpoints"]:
        assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "2s")
        keep, *labels = endpoint["relabelings"]
        assert keep["action"] == "keep"
        assert keep["sourceLabels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_port"]
        keeps[endpoint["port"]] = int(keep["regex"])
        targets = {r["targetLabel"]: r["sourceLabels"] for r in labels}
        assert targets == {
            "namespace": ["__meta_kubernetes_namespace"],
            # The pod label modelship.dev/modeldeployment, as Kubernetes discovery spells it.
            "modeldeployment": ["__meta_kubernetes_pod_label_modelship_dev_modeldeployment"],
            "pod": ["__meta_kubernetes_pod_name"],
        }
    assert keeps == {"http": REST_PORT, "health": HEALTH_PORT}


def test_service_monitor_scrapes_the_operators_metrics_port() -> None:
    docs = _monitoring_objects("--set", "metrics.port=9100,monitoring.labels.release=kps")
    service: dict[str, Any] = docs["Service"]  # type: ignore[assignment]
    monitor: dict[str, Any] = docs["ServiceMonitor"]  # type: ignore[assignment]
    deployment: dict[str, Any] = docs["Deployment"]  # type: ignore[assignment]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert monitor["metadata"]["labels"]["release"] == "kps"


def test_recording_rules_cover_every_builtin_metric_kind() -> None:
    docs = _monitoring_objects("--set", "monitoring.prometheusRule.rateWindow=1m")
    rule: dict[str, Any] = docs["PrometheusRule"]  # type: ignore[assignment]
    records = {r["record"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    for metric in (
        "modelship_server_inflight_requests",
        "modelship_server_queue_depth",
        ":tensorflow:serving:request_count",
        "process_cpu_seconds_total",
        ":tensorflow:serving:request_latency_bucket",
    ):
        assert any(metric in expr for expr in records.values()), metric
    for name, expr in records.items():
        level, _, _ = name.split(":")
        assert level.startswith("namespace_modeldeployment"), name
        if "rate(" in expr:
            assert "[1m]" in expr
            assert name.endswith("_rate1m"), name


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("replicas=11", "replicas"),
        ("leaderElection.enabled=false", "replicas"),  # 2 replicas would both write
        ("crds.install=yes", "install"),
        ("admissionPolicy.enabled=yes", "enabled"),
        ("podDisruptionBudget.minAvailable=-1", "minAvailable"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        ("resources.requests.gpu=1", "gpu"),
        ("tolerations[0].effect=Sometimes", "effect"),
        ("networkPolicy.apiServer.cidrs={10.0.0.1}", "cidrs"),
        ("monitoring.alerts.p99LatencyMs=0", "p99LatencyMs"),
        ("monitoring.grafanaDashboard.folder=x", "folder"),
        ("workers=0", "workers"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("metrics.port=70000", "port"),
        ("unknownKey=1", "unknownKey"),
        ("prometheus.url=ftp://prom", "url"),
        ("prometheus.tlsSecret.name=Bad_Name", "name"),
        ("autoscaler.tickSeconds=0", "tickSeconds"),
        ("monitoring.podMonitor.interval=often", "interval"),
        ("monitoring.serviceMonitor.enabled=maybe", "enabled"),
        ("monitoring.prometheusRule.rateWindow=1d", "rateWindow"),
        ("monitoring.grafana.enabled=true", "grafana"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(setting: str, field: str) -> None:
    result = _helm("template", "ms", str(CHART), KUBE_VERSION, "--set", setting)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


def test_chart_installs_and_upgrades_idempotently(crds_installed: LocalCluster) -> None:
    product.install_chart(crds_installed, CHART)
    product.install_chart(crds_installed, CHART)  # a second upgrade changes nothing and succeeds
    status = product.helm(crds_installed, "status", "modelship", "--namespace=modelship-system")
    assert "STATUS: deployed" in status.stdout

    def can_i(*what: str) -> str:
        return crds_installed.kubectl(
            "auth", "can-i", *what, f"--as={OPERATOR_USER}", check=False
        ).stdout.strip()

    # The authorizer's cache picks up new bindings within a moment.
    wait_for("the chart's RBAC", lambda: can_i("list", "deployments.apps") == "yes")
    assert can_i("patch", "modeldeployments.modelship.dev", "--subresource=status") == "yes"
    assert can_i("get", "secrets") == "no", "the operator never needs to read secrets"
    assert can_i("update", "modeldeployments.modelship.dev") == "no", "spec belongs to users"


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of values.yaml down to scalars, lists and free-form maps (empty by default)."""
    keys = []
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value and name != "resources":
            keys += _leaf_keys(value, f"{key}.")
        else:
            keys.append(key)
    return keys


def _schema_node(schema: dict[str, Any], key: str) -> dict[str, Any]:
    node = schema
    for part in key.split("."):
        assert node.get("additionalProperties") is False, f"{key}: {part}'s parent is not strict"
        node = node["properties"][part]
    return node


def test_every_value_is_documented_and_in_the_strict_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    keys = _leaf_keys(values)
    assert len(keys) > 40
    assert set(keys) == documented, set(keys) ^ documented
    for key in keys:
        node = _schema_node(schema, key)
        assert "type" in node or "enum" in node, key

    def strict(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
        for name, child in node.get("properties", {}).items():
            strict(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            strict(node["items"], f"{path}[]")

    strict(schema, "")


@pytest.mark.parametrize(
    ("setting", "unknown"),
    [
        ("replica=3", "replica"),
        ("crds.enabled=true", "enabled"),
        ("monitoring.alerts.severity=page", "severity"),
        ("affinity.nodeAfinity.x=1", "nodeAfinity"),
    ],
)
def test_unknown_values_are_refused_by_template_and_lint(setting: str, unknown: str) -> None:
    for command in (("template", "ms"), ("lint", "--strict")):
        result = _helm(*command, str(CHART), KUBE_VERSION, "--set", setting)
        assert result.returncode != 0, (command, result.stdout)
        output = result.stdout + result.stderr
        assert f"additional properties '{unknown}' not allowed" in output, output
