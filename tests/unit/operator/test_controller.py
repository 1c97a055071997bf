"""Plan, status and comparison logic of the ModelDeployment controller, without a cluster."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.compare import contains
from modelship_operator.controller.plan import Snapshot, plan_children
from modelship_operator.controller.queue import WorkQueue
from modelship_operator.controller.reconcile import reconcile
from modelship_operator.controller.status import judge, pod_problem
from modelship_operator.resources.children import desired_children
from modelship_operator.resources.names import ModelDeploymentRef

BODY = {
    "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {"storageUri": "s3://b/m", "replicas": 2},
}
SPEC = ModelDeploymentSpec.model_validate(BODY["spec"])


def _children() -> dict[str, dict[str, Any]]:
    return desired_children(ModelDeploymentRef.from_body(BODY), SPEC)


def _ready_deployment(replicas: int = 2) -> dict[str, Any]:
    dep = copy.deepcopy(_children()["Deployment"])
    dep["metadata"]["generation"] = 1
    dep["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "readyReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
    }
    return dep


class FakeApi:
    """Records writes; optionally refuses applies of one kind like the apiserver would."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refuse = refuse

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == self.refuse:
            raise ApiException(status=422, reason="Unprocessable Entity")
        self.calls.append(("apply", obj["kind"]))
        return obj

    def delete(self, obj: dict[str, Any]) -> None:
        self.calls.append(("delete", obj["kind"]))

    def apply_status(self, ref: ModelDeploymentRef, status: dict[str, Any]) -> None:
        self.calls.append(("status", status))

    def event(self, ref: ModelDeploymentRef, type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", reason))


def test_contains_ignores_extra_live_fields_and_quantity_spelling() -> None:
    desired = {"spec": {"cpu": "0.5", "items": [{"a": 1}]}}
    live = {"spec": {"cpu": "500m", "items": [{"a": 1, "default": True}], "extra": 1}}
    assert contains(live, desired)
    assert not contains(live, {"spec": {"cpu": "1"}})
    assert not contains(live, {"spec": {"items": [{"a": 1}, {"a": 2}]}})
    assert not contains({"spec": {}}, {"spec": {"missing": "x"}})


def test_nothing_to_apply_when_children_match() -> None:
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    plan = plan_children(Snapshot(BODY, live, []), SPEC)
    assert plan.apply == []
    assert plan.delete == []


def test_drift_and_missing_children_are_applied_with_the_right_events() -> None:
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    live["Deployment"]["spec"]["replicas"] = 7
    del live["Service"]
    plan = plan_children(Snapshot(BODY, live, []), SPEC)
    reasons = {obj["kind"]: event.reason for obj, event in plan.apply}
    assert reasons == {"Deployment": "DriftCorrected", "Service": "Created"}


def test_a_new_replica_count_is_a_scale_and_other_spec_changes_an_update() -> None:
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    scaled = {
        **BODY,
        "metadata": {**BODY["metadata"], "generation": 2},
        "spec": {**BODY["spec"], "replicas": 4},
    }
    plan = plan_children(
        Snapshot(scaled, live, []), ModelDeploymentSpec.model_validate(scaled["spec"])
    )
    reasons = {obj["kind"]: event.reason for obj, event in plan.apply}
    assert reasons == {"Deployment": "Scaled"}, "a scale rewrites nothing but the Deployment"


def test_undesired_children_are_deleted() -> None:
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    one = {**BODY, "spec": {"storageUri": "s3://b/m", "replicas": 1}}
    plan = plan_children(Snapshot(one, live, []), ModelDeploymentSpec.model_validate(one["spec"]))
    assert [obj["kind"] for obj, _ in plan.delete] == ["PodDisruptionBudget"]


def test_unschedulable_pod_gives_the_scheduler_message() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/5 nodes are available: 3 Insufficient nvidia.com/gpu.",
                }
            ]
        },
    }
    problem = pod_problem(pod)
    assert problem is not None
    assert problem.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in problem.message
    assert problem.stalls is False


def test_failed_fetch_stalls_with_the_termination_message() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "storage-initializer",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "message": "NoSuchBucket: b"}},
                }
            ]
        },
    }
    problem = pod_problem(pod)
    assert problem is not None
    assert (problem.reason, problem.stalls) == ("ModelFetchFailed", True)
    assert "NoSuchBucket: b" in problem.message


def test_judge_ready_only_when_rollout_is_complete() -> None:
    assert judge(SPEC, _ready_deployment(), [], None).ready
    rolling = _ready_deployment()
    rolling["status"]["replicas"] = 3  # an old pod still around
    assert not judge(SPEC, rolling, [], None).ready
    unobserved = _ready_deployment()
    unobserved["metadata"]["generation"] = 2
    assert judge(SPEC, unobserved, [], None).reason == "RollingOut"
    assert judge(SPEC, None, [], None).reason == "Creating"


def test_reconcile_writes_status_once_then_nothing() -> None:
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    live["Deployment"] = _ready_deployment()
    api = FakeApi()
    reconcile(Snapshot(BODY, live, []), api, now=lambda: "2026-01-01T00:00:00Z")
    statuses = [c[1] for c in api.calls if c[0] == "status"]
    assert len(statuses) == 1
    assert ("event", "Ready") in api.calls
    settled = {**BODY, "status": statuses[0]}
    again = FakeApi()
    reconcile(Snapshot(settled, live, []), again, now=lambda: "2026-01-01T00:01:00Z")
    assert again.calls == []


def test_refused_child_stalls_and_is_not_retried_for_the_same_generation() -> None:
    api = FakeApi(refuse="Deployment")
    reconcile(Snapshot(BODY, {}, []), api, now=lambda: "t")
    (status,) = [c[1] for c in api.calls if c[0] == "status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    again = FakeApi(refuse="Deployment")
    reconcile(Snapshot({**BODY, "status": status}, {}, []), again, now=lambda: "t")
    assert again.calls == []


def test_transient_api_errors_propagate_for_a_retry() -> None:
    class Flaky(FakeApi):
        def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
            raise ApiException(status=503, reason="Service Unavailable")

    with pytest.raises(ApiException):
        reconcile(Snapshot(BODY, {}, []), Flaky(), now=lambda: "t")


def test_queue_coalesces_and_requeues_keys_changed_while_active() -> None:
    async def scenario() -> list[tuple[str, str]]:
        queue = WorkQueue()
        queue.add(("ns", "a"))
        queue.add(("ns", "a"))
        queue.add(("ns", "b"))
        got = [await queue.get()]
        queue.add(got[0])  # changed while being processed
        queue.done(got[0])
        got.append(await queue.get())
        queue.done(got[1])
        got.append(await queue.get())
        queue.done(got[2])
        assert len(queue) == 0
        return got

    assert asyncio.run(scenario()) == [("ns", "a"), ("ns", "b"), ("ns", "a")]
