"""Plan, status and comparison logic of the ModelDeployment controller, without a cluster."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.compare import contains
from modelship_operator.controller.plan import Snapshot, plan_children
from modelship_operator.controller.queue import NEW, ROUTINE, WorkQueue
from modelship_operator.controller.reconcile import CreateLimits, FirstStatus, reconcile
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


def test_a_new_objects_first_status_waits_for_a_quick_rollout() -> None:
    """Creating the children posts the Created event only; within the grace, a rollout still in
    progress writes nothing either; the first status is then Ready at once."""
    clock = [100.0]
    first = FirstStatus(grace=2.0, clock=lambda: clock[0])
    api = FakeApi()
    defaulted = {**BODY, "status": {"observedGeneration": 0}}  # the CRD's default status
    reconcile(Snapshot(defaulted, {}, []), api, now=lambda: "t", first_status=first)
    assert [c for c in api.calls if c[0] == "status"] == []
    assert ("event", "Created") in api.calls
    ref = ModelDeploymentRef.from_body(BODY)
    assert first.due_in(ref) == 2.0
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    rolling = copy.deepcopy(_ready_deployment())
    rolling["status"]["availableReplicas"] = 0
    rolling["status"]["readyReplicas"] = 0
    clock[0] = 101.0
    waiting = FakeApi()
    reconcile(Snapshot(BODY, {**live, "Deployment": rolling}, []), waiting, first_status=first)
    assert waiting.calls == []
    assert first.due_in(ref) == 1.0
    live["Deployment"] = _ready_deployment()
    clock[0] = 101.5
    follow_up = FakeApi()
    reconcile(Snapshot(BODY, live, []), follow_up, now=lambda: "t", first_status=first)
    (status,) = [c[1] for c in follow_up.calls if c[0] == "status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], status["observedGeneration"]) == ("True", 1)
    assert ("event", "Ready") in follow_up.calls
    assert first.due_in(ref) is None


def test_a_slow_rollout_reports_rolling_out_when_the_grace_ends() -> None:
    clock = [100.0]
    first = FirstStatus(grace=2.0, clock=lambda: clock[0])
    reconcile(Snapshot(BODY, {}, []), FakeApi(), now=lambda: "t", first_status=first)
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    live["Deployment"]["metadata"]["generation"] = 1
    live["Deployment"]["status"] = {"observedGeneration": 1, "replicas": 2}
    clock[0] = 102.0
    api = FakeApi()
    reconcile(Snapshot(BODY, live, []), api, now=lambda: "t", first_status=first)
    (status,) = [c[1] for c in api.calls if c[0] == "status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert first.due_in(ModelDeploymentRef.from_body(BODY)) is None


def test_creates_of_a_limited_kind_wait_for_a_free_lane() -> None:
    """At most n creates of one kind in flight; other kinds and updates never wait."""
    limits = CreateLimits({"Service": 2})
    in_flight = [0]
    peak = [0]
    lock = threading.Lock()

    class Slow(FakeApi):
        def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
            if obj["kind"] == "Service":
                with lock:
                    in_flight[0] += 1
                    peak[0] = max(peak[0], in_flight[0])
                time.sleep(0.02)
                with lock:
                    in_flight[0] -= 1
            return super().apply(obj)

    def one(i: int) -> None:
        body = copy.deepcopy(BODY)
        body["metadata"]["name"] = f"m{i}"
        reconcile(Snapshot(body, {}, []), Slow(), now=lambda: "t", limits=limits)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(16)))
    assert peak[0] == 2


def test_a_spec_change_reports_rolling_out_at_once() -> None:
    """An object that has a status gets RollingOut in the reconcile that applies the new spec:
    its old Ready=True must not outlive the change."""
    live = {kind: copy.deepcopy(obj) for kind, obj in _children().items()}
    live["Deployment"] = _ready_deployment()
    first = FakeApi()
    reconcile(Snapshot(BODY, live, []), first, now=lambda: "t")
    (settled,) = [c[1] for c in first.calls if c[0] == "status"]
    changed = copy.deepcopy(BODY)
    changed["metadata"]["generation"] = 2
    changed["spec"]["storageUri"] = "s3://b/other"
    api = FakeApi()
    reconcile(Snapshot({**changed, "status": settled}, live, []), api, now=lambda: "t")
    assert ("apply", "Deployment") in api.calls
    (status,) = [c[1] for c in api.calls if c[0] == "status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RollingOut")


def test_new_specs_and_routine_changes_take_separate_lanes() -> None:
    """A key with a new spec goes to the NEW lane without settling; a routine change waits in
    the ROUTINE lane; a key is never queued twice nor processed twice at once."""

    async def scenario() -> None:
        queue = WorkQueue(settle=0.01)
        queue.add(("ns", "routine"))
        queue.add(("ns", "new"), new=True)
        queue.add(("ns", "new"))  # already pending: not queued again
        assert await asyncio.wait_for(queue.get(NEW), 1) == ("ns", "new")
        assert await asyncio.wait_for(queue.get(ROUTINE), 1) == ("ns", "routine")
        queue.add(("ns", "new"), new=True)  # changed while active: queued again when done
        queue.done(("ns", "new"))
        queue.done(("ns", "routine"))
        assert await asyncio.wait_for(queue.get(NEW), 1) == ("ns", "new")
        queue.done(("ns", "new"))
        assert len(queue) == 0

    asyncio.run(scenario())
