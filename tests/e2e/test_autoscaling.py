"""Autoscaling for real: model-server pods run as processes on the local cluster's process node,
the real Prometheus scrapes them, the operator reads it and scales the Deployment, and a load
generator sends requests through the cluster's service proxy the whole time. Direction, bounds
and failures are asserted; never timings."""

from __future__ import annotations

import json
import time
from typing import Any

from kube_helpers import apply, condition, get, model_deployment, new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.loadgen import LoadGenerator

MODEL_URI = "s3://models/half-plus-two"
ON_PROCESS_NODE = {
    "nodeSelector": {"node.modelship.dev/runs-processes": "true"},
    "tolerations": [
        {"key": "node.modelship.dev/runs-processes", "operator": "Exists", "effect": "NoSchedule"}
    ],
}
BODY = json.dumps({"instances": [1.0, 2.0, 5.0]}).encode()


def _served(cluster: LocalCluster, ns: str, name: str, **autoscaling: Any) -> None:
    cluster.model_store_secret(ns)
    apply(
        cluster,
        ns,
        model_deployment(
            name,
            storageUri=MODEL_URI,
            storageSecretName="local-model-store",
            autoscaling=autoscaling,
            **ON_PROCESS_NODE,
        ),
    )


def _scaling_active(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    md = get(cluster, ns, "modeldeployment", name) or {}
    return condition(md, "ScalingActive")


def _wait_ready(cluster: LocalCluster, ns: str, name: str, timeout: float = 240) -> None:
    def ready() -> bool:
        md = get(cluster, ns, "modeldeployment", name) or {}
        return condition(md, "Ready").get("status") == "True"

    wait_for(f"{ns}/{name} Ready", ready, timeout=timeout)


def _replicas(cluster: LocalCluster, ns: str, name: str) -> tuple[int, int]:
    """(replicas asked of the Deployment, pods ready)."""
    dep = get(cluster, ns, "deployment", name) or {}
    return dep.get("spec", {}).get("replicas", 0), dep.get("status", {}).get("readyReplicas", 0)


def test_load_scales_up_to_the_target_and_back_down_without_a_failed_request(
    operator: LocalCluster,
) -> None:
    ns = new_namespace(operator, "e2e-scale")
    # 30 requests/s against 10 per pod implies 3 pods; the scale-down window is shortened.
    _served(
        operator,
        ns,
        "hp2",
        minReplicas=1,
        maxReplicas=4,
        metric="requestsPerSecond",
        target=10,
        behavior={"scaleDown": {"stabilizationWindowSeconds": 10}},
    )
    _wait_ready(operator, ns, "hp2")
    wait_for(
        "the autoscaler's first reading",
        lambda: _scaling_active(operator, ns, "hp2").get("status") == "True",
        timeout=60,
    )
    assert _replicas(operator, ns, "hp2")[0] == 1

    url = f"http://hp2.{ns}.svc:8501/v1/models/hp2:predict"
    load = LoadGenerator(operator.proxy_url, url, BODY, expect=b'"predictions":[2.5,3.0,4.5]')
    load.start(rate=30)
    seen: list[int] = []
    try:

        def scaled_up_and_ready() -> bool:
            asked, ready = _replicas(operator, ns, "hp2")
            seen.append(asked)
            return asked >= 2 and ready == asked

        wait_for("scale-up under load, new pods ready", scaled_up_and_ready, timeout=180)
        # Keep the load on a while: the count settles at what the target implies.
        settle_until = time.monotonic() + 15
        while time.monotonic() < settle_until:
            seen.append(_replicas(operator, ns, "hp2")[0])
            time.sleep(0.5)
        # A light load goes on while pods leave: none of its requests may fail.
        load.set_rate(3)

        def back_to_one() -> bool:
            asked, _ = _replicas(operator, ns, "hp2")
            seen.append(asked)
            pods = get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=hp2")
            return asked == 1 and len((pods or {}).get("items", [])) == 1

        wait_for("scale-down to minReplicas once the load drops", back_to_one, timeout=180)
        time.sleep(3)  # requests to the remaining pod after the others are gone
    finally:
        result = load.stop()

    assert result.sent > 300, result
    assert result.failed == 0, (result.failures, result.first_failures)
    assert 2 <= max(seen) <= 4, seen  # 3 implied by the target, ±1
    md = get(operator, ns, "modeldeployment", "hp2")
    assert md["status"]["autoscaling"]["desiredReplicas"] == 1
    assert md["status"]["autoscaling"]["metric"] == "requestsPerSecond"
    events = get(operator, ns, "events", "--field-selector=involvedObject.name=hp2")["items"]
    scaled = [e["message"] for e in events if e["reason"] == "Scaled"]
    assert any("1 → " in m and "requestsPerSecond" in m and "target 10" in m for m in scaled), (
        scaled
    )
    assert any(" → 1" in m for m in scaled), scaled
    described = operator.kubectl("describe", "modeldeployment", "hp2", "-n", ns).stdout
    assert "Scaled" in described
    assert "requestsPerSecond" in described


def test_replicas_are_held_while_prometheus_is_down_and_it_recovers(
    operator: LocalCluster,
) -> None:
    ns = new_namespace(operator, "e2e-promdown")
    _served(operator, ns, "held", minReplicas=2, maxReplicas=3, target=8)
    wait_for(
        "ScalingActive=True",
        lambda: _scaling_active(operator, ns, "held").get("status") == "True",
        timeout=240,
    )
    operator.stop_component("prometheus")
    try:
        down = wait_for(
            "ScalingActive=False while Prometheus is down",
            lambda: (c := _scaling_active(operator, ns, "held")).get("status") == "False" and c,
            timeout=60,
        )
        assert down["reason"] == "PrometheusUnavailable"
        assert operator.prometheus_url.split("//", 1)[1] in down["message"]
        md = get(operator, ns, "modeldeployment", "held")
        assert condition(md, "Stalled")["status"] == "False"
        assert _replicas(operator, ns, "held")[0] == 2
    finally:
        operator.start_component("prometheus")
    wait_for(
        "ScalingActive=True again once Prometheus is back",
        lambda: _scaling_active(operator, ns, "held").get("status") == "True",
        timeout=90,
    )
    assert _replicas(operator, ns, "held")[0] == 2

    # `kubectl scale` changes nothing while the autoscaler owns the count, and says so.
    operator.kubectl("scale", "modeldeployment", "held", "-n", ns, "--replicas=3")

    def ignored() -> list[str]:
        events = get(operator, ns, "events", "--field-selector=involvedObject.name=held")
        return [e["message"] for e in events["items"] if e["reason"] == "ScaleIgnored"]

    (message,) = wait_for("a ScaleIgnored event", ignored, timeout=30)
    assert "spec.replicas=3 is ignored" in message
    assert _replicas(operator, ns, "held")[0] == 2
    # The operator never writes the spec: GitOps tools see no drift.
    md = operator.kubectl(
        "get", "modeldeployment", "held", "-n", ns, "-o", "json", "--show-managed-fields"
    ).stdout
    for entry in json.loads(md)["metadata"]["managedFields"]:
        if entry["manager"] == "modelship":
            assert entry.get("subresource") == "status", entry


def test_a_bad_promql_query_is_named_and_does_not_stop_the_others(
    operator: LocalCluster,
) -> None:
    ns = new_namespace(operator, "e2e-promql")
    _served(
        operator,
        ns,
        "broken",
        maxReplicas=2,
        metric="promql",
        promql="sum(rate(modelship_server_inflight_requests[5s]",
        target=5,
    )
    _served(
        operator,
        ns,
        "unknown",
        maxReplicas=2,
        metric="promql",
        promql="sum(no_such_function(modelship_server_inflight_requests))",
        target=5,
    )
    _served(
        operator,
        ns,
        "custom",
        maxReplicas=2,
        metric="promql",
        promql=f'sum(modelship_server_inflight_requests{{namespace="{ns}"}})',
        target=5,
    )
    bad = wait_for(
        "ScalingActive=False for the broken query",
        lambda: (c := _scaling_active(operator, ns, "broken")).get("status") == "False" and c,
        timeout=240,
    )
    # Refused before it is combined with the others' queries: it could close their wrapper.
    assert bad["reason"] == "QueryFailed"
    assert "bracket(s) left open" in bad["message"]
    assert "sum(rate(modelship_server_inflight_requests[5s]" in bad["message"]
    # Refused by Prometheus itself, with its own words.
    unknown = wait_for(
        "ScalingActive=False for the unknown function",
        lambda: (c := _scaling_active(operator, ns, "unknown")).get("status") == "False" and c,
        timeout=240,
    )
    assert unknown["reason"] == "QueryFailed"
    assert "no_such_function" in unknown["message"]
    assert "parse error" in unknown["message"]
    wait_for(
        "the good query keeps working",
        lambda: _scaling_active(operator, ns, "custom").get("status") == "True",
        timeout=240,
    )
