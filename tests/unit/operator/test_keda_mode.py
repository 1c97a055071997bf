"""Autoscaling mode keda: the ScaledObject the operator writes, and what the mode switch changes
in the Deployment, the status, the events and the operator's own autoscaler."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.plan import Snapshot
from modelship_operator.controller.reconcile import reconcile
from modelship_operator.controller.runtime import Controller
from modelship_operator.controller.scaling import ScaleState
from modelship_operator.resources.children import desired_children
from modelship_operator.resources.names import ModelDeploymentRef
from modelship_operator.resources.scaledobject import (
    MetricsSource,
    build_scaled_object,
    keda_blocker,
    object_query,
)

PROMETHEUS = MetricsSource("http://prometheus.monitoring:9090", "7s")


def _body(**autoscaling: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {
            "storageUri": "s3://b/m",
            "replicas": 3,
            "server": {"resources": {"requests": {"cpu": "500m"}}},
            "autoscaling": {
                "mode": "keda",
                "minReplicas": 1,
                "maxReplicas": 6,
                "target": 16,
                **autoscaling,
            },
        },
    }


def _spec(body: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(body["spec"])


def _scaled_object(**autoscaling: Any) -> dict[str, Any]:
    body = _body(**autoscaling)
    return build_scaled_object(ModelDeploymentRef.from_body(body), _spec(body), PROMETHEUS)


def _trigger(scaled_object: dict[str, Any]) -> dict[str, Any]:
    (trigger,) = scaled_object["spec"]["triggers"]
    return dict(trigger)


class RecordingApi:
    """Records writes; `missing` kinds answer 404 as an apiserver without their CRD does."""

    def __init__(self, missing: str | None = None, body: dict[str, Any] | None = None) -> None:
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.missing = missing
        self.body = body or {"kind": "Status", "reason": "NotFound", "details": {}}

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == self.missing:
            raise ApiException(status=404, reason="Not Found")
        self.applied.append(obj)
        return obj

    def delete(self, obj: dict[str, Any]) -> None:
        self.deleted.append(obj)

    def apply_status(self, ref: ModelDeploymentRef, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, ref: ModelDeploymentRef, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def _with_body(api: RecordingApi) -> RecordingApi:
    """404 answers carry the apiserver's Status body (ApiException keeps it in .body)."""
    original = api.apply

    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        try:
            return original(obj)
        except ApiException as err:
            err.body = json.dumps(api.body)
            raise

    api.apply = apply  # type: ignore[method-assign]
    return api


def _live(body: dict[str, Any], metrics: MetricsSource | None = PROMETHEUS) -> dict[str, Any]:
    spec = _spec(body)
    children = desired_children(ModelDeploymentRef.from_body(body), spec, 3, metrics)
    dep = children["Deployment"]
    dep["metadata"]["generation"] = 1
    dep["status"] = {
        "observedGeneration": 1,
        "replicas": 3,
        "readyReplicas": 3,
        "updatedReplicas": 3,
        "availableReplicas": 3,
    }
    return children


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == kind), None)


# ---- the ScaledObject ---------------------------------------------------------------------


def test_scaled_object_targets_the_modeldeployment_scale_subresource() -> None:
    so = _scaled_object()
    assert (so["apiVersion"], so["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert so["metadata"]["name"] == "m"
    assert so["metadata"]["namespace"] == "ns"
    owner = so["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ModelDeployment",
        "m",
        "u",
        True,
    )
    assert so["metadata"]["labels"]["modelship.dev/modeldeployment"] == "m"
    assert so["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelship"
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "m",
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 6)


def test_trigger_reads_this_object_from_the_operators_prometheus() -> None:
    trigger = _trigger(_scaled_object())
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == PROMETHEUS.prometheus_url
    assert meta["threshold"] == "16"  # KEDA's metadata values are strings
    assert meta["ignoreNullValues"] == "false"  # no data holds replicas instead of reading 0
    assert meta["query"] == (
        "sum by (namespace, modeldeployment) "
        '(modelship_server_inflight_requests{namespace="ns", modeldeployment="m"})'
    )
    assert "authenticationRef" not in trigger
    assert "unsafeSsl" not in meta


@pytest.mark.parametrize(
    ("metric", "metric_type", "needle"),
    [
        ("queueDepth", "AverageValue", "modelship_server_queue_depth{"),
        ("requestsPerSecond", "AverageValue", "rate(:tensorflow:serving:request_count{"),
        ("cpuUtilization", "AverageValue", "rate(process_cpu_seconds_total{"),
        ("p99LatencyMs", "Value", "histogram_quantile(0.99"),
    ],
)
def test_each_metric_kind_has_its_query_and_metric_type(
    metric: str, metric_type: str, needle: str
) -> None:
    trigger = _trigger(_scaled_object(metric=metric))
    query = trigger["metadata"]["query"]
    assert trigger["metricType"] == metric_type
    assert needle in query
    assert '{namespace="ns", modeldeployment="m"}' in query
    assert "[7s]" in query or metric == "queueDepth"  # the operator's rate window


def test_cpu_is_a_percent_of_the_request_and_latency_is_in_milliseconds() -> None:
    body = _body(metric="cpuUtilization", target=80)
    cpu = object_query(ModelDeploymentRef.from_body(body), _spec(body), "5s")
    assert cpu.endswith(") * 100 / 0.5")  # cores → percent of the 500m request
    body = _body(metric="p99LatencyMs", target=250)
    latency = object_query(ModelDeploymentRef.from_body(body), _spec(body), "5s")
    assert latency.startswith("((histogram_quantile")
    assert latency.endswith(") / 1000")


def test_promql_is_the_users_query_summed() -> None:
    query = 'rate(http_requests_total{service="mnist"}[1m]) # per second'
    trigger = _trigger(_scaled_object(metric="promql", promql=query))
    assert trigger["metadata"]["query"] == f"sum(\n{query}\n)"
    assert trigger["metricType"] == "AverageValue"


def test_trigger_authentication_sets_the_authentication_ref() -> None:
    trigger = _trigger(_scaled_object(kedaTriggerAuthentication="prom-auth"))
    assert trigger["authenticationRef"] == {"name": "prom-auth"}
    body = _body()
    insecure = MetricsSource("https://prom:9090", "5s", insecure_skip_verify=True)
    so = build_scaled_object(ModelDeploymentRef.from_body(body), _spec(body), insecure)
    assert _trigger(so)["metadata"]["unsafeSsl"] == "true"


def test_behavior_is_ours_in_the_hpa_shape_with_our_defaults_written_out() -> None:
    behavior = _scaled_object()["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    # Our defaults: scale-up waits 10 s (the HPA's 0), scale-down 300 s, no policy = no limit.
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 10
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    unlimited = [{"type": "Pods", "value": 6, "periodSeconds": 15}]
    assert behavior["scaleUp"]["policies"] == behavior["scaleDown"]["policies"] == unlimited
    given = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Min",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 30},
            ],
        },
        "scaleDown": {"selectPolicy": "Disabled"},
    }
    behavior = _scaled_object(behavior=given)["spec"]["advanced"]["horizontalPodAutoscalerConfig"][
        "behavior"
    ]
    assert behavior["scaleUp"] == given["scaleUp"]
    assert behavior["scaleDown"]["selectPolicy"] == "Disabled"
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_a_changed_spec_changes_the_digest_so_dropped_fields_are_reapplied() -> None:
    with_auth = _scaled_object(kedaTriggerAuthentication="prom-auth")
    without = _scaled_object()
    key = "modelship.dev/spec-hash"
    assert with_auth["metadata"]["annotations"][key] != without["metadata"]["annotations"][key]
    assert _scaled_object()["metadata"]["annotations"] == without["metadata"]["annotations"]


def test_blockers_name_what_is_missing() -> None:
    assert keda_blocker(_spec(_body()), PROMETHEUS) is None
    blocker = keda_blocker(_spec(_body()), MetricsSource(""))
    assert blocker is not None
    assert blocker.reason == "PrometheusNotConfigured"
    assert "--prometheus-url" in blocker.message
    assert keda_blocker(_spec(_body()), None) is not None
    broken = keda_blocker(_spec(_body(metric="promql", promql="sum(rate(x[1m])")), PROMETHEUS)
    assert broken is not None
    assert broken.reason == "QueryFailed"
    operator_mode = _body()
    operator_mode["spec"]["autoscaling"]["mode"] = "operator"
    assert keda_blocker(_spec(operator_mode), None) is None


# ---- the mode switch in a reconcile --------------------------------------------------------


def test_keda_mode_writes_the_scaled_object_and_passes_spec_replicas_on() -> None:
    body = _body()
    api = RecordingApi()
    reconcile(Snapshot(body, {}, []), api, metrics=PROMETHEUS)
    kinds = [obj["kind"] for obj in api.applied]
    assert "ScaledObject" in kinds
    (deployment,) = [obj for obj in api.applied if obj["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3  # spec.replicas, which KEDA's HPA writes
    (status,) = api.statuses
    assert status["autoscaling"]["mode"] == "keda"
    assert status["autoscaling"]["desiredReplicas"] == 3
    assert "ScaledObject m" in status["autoscaling"]["message"]
    assert _condition(status, "ScalingActive") is None
    assert ("Normal", "Created") in {(t, r) for t, r, _ in api.events}


def test_keda_mode_keeps_spec_replicas_within_the_bounds() -> None:
    body = _body()
    body["spec"]["replicas"] = 40
    api = RecordingApi()
    reconcile(Snapshot(body, {}, []), api, metrics=PROMETHEUS)
    (deployment,) = [obj for obj in api.applied if obj["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 6


def test_keda_mode_at_rest_costs_no_writes() -> None:
    body = _body()
    first = RecordingApi()
    reconcile(Snapshot(body, _live(body), []), first, metrics=PROMETHEUS)
    (status,) = first.statuses
    settled = copy.deepcopy(body)
    settled["status"] = status
    again = RecordingApi()
    reconcile(Snapshot(settled, _live(body), []), again, metrics=PROMETHEUS)
    assert (again.applied, again.deleted, again.statuses, again.events) == ([], [], [], [])


def test_a_scale_by_kedas_hpa_reaches_the_deployment_without_scale_ignored() -> None:
    body = _body()
    live = _live(body)
    body["spec"]["replicas"] = 5
    body["metadata"]["generation"] = 2
    api = RecordingApi()
    # Even a stale decision of the operator's own autoscaler does not count in mode keda.
    stale = ScaleState(desired=2, metric="inflightRequests", target=16)
    reconcile(Snapshot(body, live, [], scale=stale, scale_ignored=True), api, metrics=PROMETHEUS)
    (deployment,) = [obj for obj in api.applied if obj["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 5
    assert "ScaledObject" not in [obj["kind"] for obj in api.applied]  # a scale rewrites nothing
    assert "ScaleIgnored" not in [reason for _, reason, _ in api.events]


def test_switching_back_to_operator_mode_deletes_the_scaled_object() -> None:
    body = _body()
    live = _live(body)
    assert "ScaledObject" in live
    body["spec"]["autoscaling"]["mode"] = "operator"
    body["metadata"]["generation"] = 2
    api = RecordingApi()
    reconcile(Snapshot(body, live, []), api, metrics=PROMETHEUS)
    assert [obj["kind"] for obj in api.deleted] == ["ScaledObject"]
    (status,) = api.statuses
    assert status["autoscaling"]["mode"] == "operator"
    assert _condition(status, "ScalingActive") is not None


def test_without_a_prometheus_address_no_scaled_object_and_a_condition_not_stalled() -> None:
    body = _body()
    api = RecordingApi()
    reconcile(Snapshot(body, {}, []), api, metrics=MetricsSource(""))
    assert "ScaledObject" not in [obj["kind"] for obj in api.applied]
    (status,) = api.statuses
    active = _condition(status, "ScalingActive")
    assert active is not None
    assert (active["status"], active["reason"]) == ("False", "PrometheusNotConfigured")
    assert _condition(status, "Stalled")["status"] == "False"  # type: ignore[index]
    assert ("Warning", "PrometheusNotConfigured") in {(t, r) for t, r, _ in api.events}


def test_a_cluster_without_kedas_crd_gets_a_condition_naming_keda() -> None:
    body = _body()
    api = _with_body(RecordingApi(missing="ScaledObject"))
    reconcile(Snapshot(body, {}, []), api, metrics=PROMETHEUS)
    # The other children are written all the same.
    assert {"Deployment", "Service"} <= {obj["kind"] for obj in api.applied}
    # Once they run, the status settles with the condition.
    running = _live(body, metrics=None)
    api = _with_body(RecordingApi(missing="ScaledObject"))
    reconcile(Snapshot(body, running, []), api, metrics=PROMETHEUS)
    (status,) = api.statuses
    active = _condition(status, "ScalingActive")
    assert active is not None
    assert (active["status"], active["reason"]) == ("False", "KEDANotInstalled")
    assert "scaledobjects.keda.sh" in active["message"]
    assert "KEDA" in active["message"]
    assert _condition(status, "Stalled")["status"] == "False"  # type: ignore[index]
    assert ("Warning", "KEDANotInstalled") in {(t, r) for t, r, _ in api.events}
    # The next pass (the resync) tries again, and says nothing new while nothing changed.
    settled = copy.deepcopy(body)
    settled["status"] = status
    again = _with_body(RecordingApi(missing="ScaledObject"))
    reconcile(Snapshot(settled, running, []), again, metrics=PROMETHEUS)
    assert (again.statuses, again.events) == ([], [])


def test_a_missing_namespace_is_not_mistaken_for_a_missing_crd() -> None:
    api = _with_body(
        RecordingApi(
            missing="ScaledObject",
            body={"kind": "Status", "reason": "NotFound", "details": {"name": "ns"}},
        )
    )
    with pytest.raises(ApiException):
        reconcile(Snapshot(_body(), {}, []), api, metrics=PROMETHEUS)


# ---- the operator's own autoscaler leaves keda-mode objects alone ---------------------------


def test_the_operators_autoscaler_skips_keda_mode_objects() -> None:
    asyncio.run(_autoscaler_skips_keda_mode_objects())


async def _autoscaler_skips_keda_mode_objects() -> None:
    controller = Controller()
    keda = _body()
    operator_mode = copy.deepcopy(_body())
    operator_mode["metadata"]["name"] = "o"
    operator_mode["spec"]["autoscaling"]["mode"] = "operator"
    indexes = {"modeldeployments": {("ns", "m"): [keda], ("ns", "o"): [operator_mode]}}
    controller.notify(("ns", "m"), indexes)
    assert [t.key for t in controller.scale_targets()] == [("ns", "o")]
    # A `kubectl scale` of a keda-mode object is KEDA's doing, not one to report as ignored.
    assert controller.snapshot(("ns", "m")).scale_ignored is False  # type: ignore[union-attr]
    keda["spec"]["replicas"] = 5
    assert controller.snapshot(("ns", "m")).scale_ignored is False  # type: ignore[union-attr]
