"""How the autoscaler's decisions reach the Deployment, the status and the events."""

from __future__ import annotations

import copy
from typing import Any

from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.plan import Snapshot, plan_children
from modelship_operator.controller.reconcile import reconcile
from modelship_operator.controller.scaling import ScaleState, effective_replicas
from modelship_operator.resources.children import desired_children
from modelship_operator.resources.names import ModelDeploymentRef

AUTOSCALED = {
    "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {
        "storageUri": "s3://b/m",
        "replicas": 1,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 6, "target": 16},
    },
}
SPEC = ModelDeploymentSpec.model_validate(AUTOSCALED["spec"])


class RecordingApi:
    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return obj

    def delete(self, obj: dict[str, Any]) -> None:
        raise AssertionError("nothing to delete")

    def apply_status(self, ref: ModelDeploymentRef, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, ref: ModelDeploymentRef, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def _live(replicas: int) -> dict[str, dict[str, Any]]:
    children = desired_children(ModelDeploymentRef.from_body(AUTOSCALED), SPEC, replicas)
    dep = children["Deployment"]
    dep["metadata"]["generation"] = 1
    dep["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "readyReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
    }
    return children


def _body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(AUTOSCALED)
    if status is not None:
        body["status"] = status
    return body


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_effective_replicas_prefers_the_decision_then_status_then_the_deployment() -> None:
    state = ScaleState(desired=4, metric="inflightRequests", target=16)
    assert effective_replicas(SPEC, {}, None, state) == 4
    assert effective_replicas(SPEC, {"autoscaling": {"desiredReplicas": 3}}, None, None) == 3
    assert effective_replicas(SPEC, {}, {"spec": {"replicas": 5}}, None) == 5
    assert effective_replicas(SPEC, {}, None, None) == 1
    # Bounds act at once, whatever the autoscaler said last.
    assert effective_replicas(SPEC, {}, None, ScaleState(9, "inflightRequests", 16)) == 6
    manual = ModelDeploymentSpec.model_validate({"storageUri": "s3://b/m", "replicas": 3})
    assert effective_replicas(manual, {}, None, state) == 3


def test_a_scale_decision_sets_the_deployment_the_status_and_one_event() -> None:
    state = ScaleState(
        desired=5,
        metric="inflightRequests",
        target=16,
        value=71.0,
        reason="ScaledUp",
        message="2 → 5: inflightRequests 71 per pod, target 16",
        scaled_at="2026-12-02T06:00:00Z",
    )
    api = RecordingApi()
    reconcile(Snapshot(_body(), _live(2), [], scale=state), api)
    (deployment,) = [obj for obj in api.applied if obj["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 5
    (status,) = api.statuses
    assert status["autoscaling"] == {
        "mode": "operator",
        "metric": "inflightRequests",
        "target": 16,
        "desiredReplicas": 5,
        "currentValue": 71.0,
        "reason": "ScaledUp",
        "message": "2 → 5: inflightRequests 71 per pod, target 16",
        "lastScaleTime": "2026-12-02T06:00:00Z",
    }
    assert _condition(status, "ScalingActive")["status"] == "True"
    scaled = [e for e in api.events if e[1] == "Scaled"]
    assert len(scaled) == 1
    assert "2 → 5: inflightRequests 71 per pod, target 16" in scaled[0][2]


def test_metrics_trouble_holds_replicas_and_never_stalls() -> None:
    state = ScaleState(
        desired=3,
        metric="inflightRequests",
        target=16,
        problem_reason="PrometheusUnavailable",
        problem="replicas held: cannot reach http://prometheus:9090",
    )
    api = RecordingApi()
    reconcile(Snapshot(_body(), _live(3), [], scale=state), api)
    assert not [obj for obj in api.applied if obj["kind"] == "Deployment"]
    (status,) = api.statuses
    active = _condition(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "PrometheusUnavailable")
    assert "cannot reach" in active["message"]
    assert _condition(status, "Stalled")["status"] == "False"
    assert _condition(status, "Ready")["status"] == "True"


def test_at_rest_an_autoscaled_object_costs_no_writes() -> None:
    for state in (
        None,
        ScaleState(desired=2, metric="inflightRequests", target=16, value=10.0),
        ScaleState(2, "inflightRequests", 16, problem_reason="NoData", problem="no data"),
    ):
        first = RecordingApi()
        reconcile(Snapshot(_body(), _live(2), [], scale=state), first)
        (status,) = first.statuses
        again = RecordingApi()
        reconcile(Snapshot(_body(status), _live(2), [], scale=state), again)
        assert (again.applied, again.statuses, again.events) == ([], [], []), state


def test_after_a_restart_the_last_decision_is_kept() -> None:
    before = {
        "autoscaling": {
            "metric": "inflightRequests",
            "target": 16,
            "desiredReplicas": 4,
            "message": "2 → 4: inflightRequests 30 per pod, target 16",
            "lastScaleTime": "2026-12-02T06:00:00Z",
        }
    }
    api = RecordingApi()
    # The Deployment runs 4; no autoscaler state yet: nothing is scaled back to minReplicas.
    reconcile(Snapshot(_body(before), _live(4), [], scale=None), api)
    assert not [obj for obj in api.applied if obj["kind"] == "Deployment"]
    (status,) = api.statuses
    assert status["autoscaling"]["desiredReplicas"] == 4
    assert status["autoscaling"]["message"].startswith("2 → 4")
    assert _condition(status, "ScalingActive")["status"] == "Unknown"


def test_kubectl_scale_while_autoscaling_is_reported_as_ignored() -> None:
    body = _body()
    body["spec"]["replicas"] = 5
    state = ScaleState(desired=2, metric="inflightRequests", target=16, value=10.0)
    api = RecordingApi()
    reconcile(Snapshot(body, _live(2), [], scale=state, scale_ignored=True), api)
    assert not [obj for obj in api.applied if obj["kind"] == "Deployment"]
    ignored = [e for e in api.events if e[1] == "ScaleIgnored"]
    assert ignored
    assert "spec.replicas=5 is ignored" in ignored[0][2]


def test_leaving_keda_mode_deletes_the_scaled_object_even_when_the_cache_has_none() -> None:
    # The watch on a CRD installed after the operator started may not be serving yet.
    body = _body({"autoscaling": {"mode": "keda", "desiredReplicas": 2}})
    plan = plan_children(Snapshot(body, _live(2), []), SPEC, 2)
    (deleted,) = [obj for obj, _ in plan.delete]
    assert deleted["kind"] == "ScaledObject"
    assert deleted["metadata"] == {"name": "m", "namespace": "ns"}
    # Not while the object stays in keda mode, and not for an object that never was in it.
    keda = copy.deepcopy(body)
    keda["spec"]["autoscaling"]["mode"] = "keda"
    keda_spec = ModelDeploymentSpec.model_validate(keda["spec"])
    assert not plan_children(Snapshot(keda, _live(2), []), keda_spec, 2).delete
    assert not plan_children(Snapshot(_body(), _live(2), []), SPEC, 2).delete
