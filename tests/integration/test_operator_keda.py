"""Autoscaling mode keda on the real control plane, against KEDA's real ScaledObject CRD.

KEDA's CRD is cluster-wide and the session shares one cluster, so the order matters: the first
test runs while the CRD is absent (and skips if something installed it already), then installs
it; the later ones need it installed.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml
from kube_helpers import apply, condition, get, model_deployment, new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.resources.names import ModelDeploymentRef
from modelship_operator.resources.scaledobject import MetricsSource, build_scaled_object
from toolchain_crds import keda_scaledobject_crd

CRD_NAME = "scaledobjects.keda.sh"
# Server-set fields a client does not send back.
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def _crd_installed(cluster: LocalCluster) -> bool:
    found = cluster.kubectl("get", "crd", CRD_NAME, "--ignore-not-found", "-o", "name")
    return bool(found.stdout.strip())


def _install_keda_crd(cluster: LocalCluster) -> None:
    crd = keda_scaledobject_crd()
    cluster.kubectl("apply", "--server-side", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")


def _keda(name: str, **autoscaling: Any) -> dict[str, Any]:
    return model_deployment(
        name,
        replicas=1,
        autoscaling={"mode": "keda", "minReplicas": 1, "maxReplicas": 5, **autoscaling},
    )


def _scaling_active(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    return condition(get(cluster, ns, "modeldeployment", name), "ScalingActive")


def _dry_run(cluster: LocalCluster, obj: dict[str, Any]) -> None:
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=dry-run-check",
        "-f",
        "-",
        input_text=yaml.safe_dump(obj),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_keda_mode_without_kedas_crd_says_so_then_heals_when_it_is_installed(
    operator: LocalCluster,
) -> None:
    if _crd_installed(operator):
        pytest.skip(f"{CRD_NAME} is already installed in this session's cluster")
    ns = new_namespace(operator, "keda-missing")
    apply(operator, ns, _keda("waiting"))

    def missing() -> dict[str, Any] | None:
        active = _scaling_active(operator, ns, "waiting")
        return active if active.get("reason") == "KEDANotInstalled" else None

    active = wait_for("ScalingActive=False KEDANotInstalled", missing)
    assert active["status"] == "False"
    assert CRD_NAME in active["message"]
    assert "install KEDA" in active["message"]
    md = get(operator, ns, "modeldeployment", "waiting")
    assert condition(md, "Stalled")["status"] == "False"
    assert md["status"]["autoscaling"]["mode"] == "keda"
    # The rest of the object is served as usual.
    assert get(operator, ns, "deployment", "waiting")["spec"]["replicas"] == 1
    assert get(operator, ns, "service", "waiting") is not None
    events = operator.kubectl(
        "get", "events", "-n", ns, "--field-selector=reason=KEDANotInstalled", "-o", "name"
    )
    assert events.stdout.strip()

    # Installing KEDA later is enough: the next resync writes the ScaledObject.
    _install_keda_crd(operator)
    wait_for(
        "the ScaledObject once KEDA's CRD is installed",
        lambda: get(operator, ns, "scaledobject", "waiting"),
        timeout=90,
    )
    wait_for(
        "ScalingActive to go away",
        lambda: not _scaling_active(operator, ns, "waiting"),
        timeout=30,
    )


def test_keda_mode_writes_a_scaled_object_the_real_crd_accepts(operator: LocalCluster) -> None:
    if not _crd_installed(operator):
        _install_keda_crd(operator)
    ns = new_namespace(operator, "keda")
    apply(
        operator,
        ns,
        _keda(
            "kd",
            target=4,
            kedaTriggerAuthentication="prom-auth",
            behavior={"scaleDown": {"stabilizationWindowSeconds": 60}},
        ),
    )
    so = wait_for("the ScaledObject", lambda: get(operator, ns, "scaledobject", "kd"))

    # A new object's first status may follow its children by up to the operator's grace (2 s).
    def reported() -> dict[str, Any] | None:
        found: dict[str, Any] | None = get(operator, ns, "modeldeployment", "kd")
        return found if found and (found.get("status") or {}).get("conditions") else None

    md = wait_for("the first status", reported, timeout=30)
    owner = so["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("ModelDeployment", md["metadata"]["uid"])
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "kd",
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 5)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    assert trigger["authenticationRef"] == {"name": "prom-auth"}
    assert trigger["metadata"]["serverAddress"] == operator.prometheus_url
    assert trigger["metadata"]["threshold"] == "4"
    assert f'namespace="{ns}", modeldeployment="kd"' in trigger["metadata"]["query"]
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert md["status"]["autoscaling"]["mode"] == "keda"
    assert not condition(md, "ScalingActive")

    # What the operator wrote passes the CRD's validation again, as a client would send it.
    sent = {k: v for k, v in so.items() if k != "status"}
    sent["metadata"] = {k: v for k, v in so["metadata"].items() if k not in SERVER_FIELDS}
    _dry_run(operator, sent)

    # `kubectl scale` is what KEDA's HPA does (the scale subresource): the Deployment follows.
    operator.kubectl("scale", "modeldeployment", "kd", "--replicas=3", "-n", ns)
    wait_for(
        "the Deployment at 3 replicas",
        lambda: (get(operator, ns, "deployment", "kd") or {}).get("spec", {}).get("replicas") == 3,
    )
    scale_path = f"/apis/modelship.dev/v1alpha1/namespaces/{ns}/modeldeployments/kd/scale"
    scale = json.loads(operator.kubectl("get", "--raw", scale_path).stdout)
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == "modelship.dev/modeldeployment=kd"
    ignored = operator.kubectl(
        "get", "events", "-n", ns, "--field-selector=reason=ScaleIgnored", "-o", "name"
    )
    assert ignored.stdout.strip() == ""

    # Back to the operator's own autoscaler: the ScaledObject goes. (The manifest leaves
    # replicas out: `kubectl scale` owns that field now, as KEDA's HPA would.)
    apply(operator, ns, model_deployment("kd", autoscaling={"maxReplicas": 5}))
    wait_for("the ScaledObject to be deleted", lambda: not get(operator, ns, "scaledobject", "kd"))
    wait_for(
        "status.autoscaling.mode operator",
        lambda: (
            get(operator, ns, "modeldeployment", "kd")["status"]["autoscaling"]["mode"]
            == "operator"
        ),
    )


@pytest.mark.parametrize(
    "autoscaling",
    [
        {"metric": "inflightRequests"},
        {"metric": "queueDepth"},
        {"metric": "requestsPerSecond"},
        {"metric": "cpuUtilization", "target": 70},
        {"metric": "p99LatencyMs", "target": 250},
        {"metric": "promql", "promql": "rate(http_requests_total[1m])"},
        {
            "behavior": {
                "scaleUp": {
                    "selectPolicy": "Min",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                },
                "scaleDown": {"selectPolicy": "Disabled"},
            }
        },
    ],
    ids=lambda a: a.get("metric", "behavior"),
)
def test_every_kind_of_scaled_object_passes_server_side_dry_run(
    operator: LocalCluster, autoscaling: dict[str, Any]
) -> None:
    if not _crd_installed(operator):
        _install_keda_crd(operator)
    spec = ModelDeploymentSpec.model_validate(
        {
            "storageUri": "s3://models/m",
            "server": {"resources": {"requests": {"cpu": "250m"}}},
            "autoscaling": {"mode": "keda", "maxReplicas": 4, **autoscaling},
        }
    )
    ref = ModelDeploymentRef("dry", "default", "00000000-0000-0000-0000-000000000000", 1)
    source = MetricsSource(operator.prometheus_url, "5s")
    so = build_scaled_object(ref, spec, source)
    _dry_run(operator, so)
    # The trigger's query is one the real Prometheus parses and runs.
    (trigger,) = so["spec"]["triggers"]
    query = urllib.parse.urlencode({"query": trigger["metadata"]["query"]})
    with urllib.request.urlopen(f"{operator.prometheus_url}/api/v1/query?{query}") as answer:
        assert json.load(answer)["status"] == "success"
