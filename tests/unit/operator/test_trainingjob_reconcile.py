"""One TrainingJob reconcile against a recording writer: children, status, clean-up and TTL."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship_operator.controller.trainingjob.reconcile import (
    TrainingSnapshot,
    reconcile_training,
)

BODY: dict[str, Any] = {
    "kind": "TrainingJob",
    "metadata": {"name": "t", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {
        "replicaSpecs": {
            "chief": {"replicas": 1, "image": "img"},
            "worker": {"replicas": 2, "image": "img"},
            "ps": {"replicas": 1, "image": "img"},
        },
        "runPolicy": {"cleanPodPolicy": "Running", "ttlSecondsAfterFinished": 60},
        "output": {"storageUri": "s3://models/t"},
    },
}
NOW = "2026-01-01T00:00:00Z"


class Recorder:
    def __init__(self, refuse: int | None = None) -> None:
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.refuse = refuse

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise ApiException(status=self.refuse, reason="no")
        self.applied.append(obj)
        return obj

    def delete(self, obj: dict[str, Any]) -> None:
        self.deleted.append(f"{obj['kind']}/{obj['metadata']['name']}")

    def apply_status(self, ref: Any, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, ref: Any, type_: str, reason: str, message: str) -> None:
        self.events.append(reason)


def _run(snapshot: TrainingSnapshot, api: Recorder, clock: float = 0.0) -> float | None:
    return reconcile_training(snapshot, api, None, now=lambda: NOW, clock=lambda: clock)


def _live(api: Recorder) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    jobs = {
        o["metadata"]["name"].removeprefix("t-"): copy.deepcopy(o)
        for o in api.applied
        if o["kind"] == "Job"
    }
    service = next(copy.deepcopy(o) for o in api.applied if o["kind"] == "Service")
    return jobs, service


def _complete(job: dict[str, Any]) -> dict[str, Any]:
    job["status"] = {
        "succeeded": 1,
        "completionTime": "2026-01-01T00:10:00Z",
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    return job


def test_a_new_job_gets_its_service_and_one_job_per_role_then_nothing_at_rest() -> None:
    api = Recorder()
    assert _run(TrainingSnapshot(BODY, {}, None, []), api) is None
    assert sorted(o["metadata"]["name"] for o in api.applied) == [
        "t-chief",
        "t-ps",
        "t-tf",
        "t-worker",
    ]
    assert api.statuses[-1]["state"] == "Pending"
    jobs, service = _live(api)
    seen = Recorder()  # the Jobs observed: per-role counts appear in status
    _run(TrainingSnapshot({**BODY, "status": api.statuses[-1]}, jobs, service, []), seen)
    assert (seen.applied, seen.deleted) == ([], [])
    settled = {**BODY, "status": seen.statuses[-1]}
    again = Recorder()
    _run(TrainingSnapshot(settled, jobs, service, []), again)
    assert (again.applied, again.deleted, again.statuses, again.events) == ([], [], [], [])


def test_success_then_running_roles_are_cleaned_up_then_the_ttl_deletes_the_job() -> None:
    api = Recorder()
    _run(TrainingSnapshot(BODY, {}, None, []), api)
    jobs, service = _live(api)
    _complete(jobs["chief"])
    _complete(jobs["worker"])
    jobs["ps"]["status"] = {"active": 1}
    done = Recorder()
    assert _run(TrainingSnapshot(BODY, jobs, service, []), done) == 0.0
    status = done.statuses[-1]
    assert status["state"] == "Succeeded"
    assert status["completionTime"] == "2026-01-01T00:10:00Z"
    assert "Succeeded" in done.events

    finished = {**BODY, "status": status}
    cleanup = Recorder()
    remaining = _run(TrainingSnapshot(finished, jobs, service, []), cleanup, clock=0.0)
    assert cleanup.deleted == ["Job/t-ps"], "only the role still running is stopped"
    assert remaining is not None
    assert remaining > 0
    expired = Recorder()
    ten_past = 1767225600.0 + 600 + 61  # 2026-01-01T00:10:00Z + 61 s
    _run(TrainingSnapshot(finished, {}, service, []), expired, clock=ten_past)
    assert expired.deleted == ["TrainingJob/t"]


def test_a_failed_role_fails_the_job_and_it_stays_failed() -> None:
    api = Recorder()
    _run(TrainingSnapshot(BODY, {}, None, []), api)
    jobs, service = _live(api)
    jobs["worker"]["status"] = {
        "failed": 4,
        "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}
        ],
    }
    failed = Recorder()
    _run(TrainingSnapshot(BODY, jobs, service, []), failed)
    status = failed.statuses[-1]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert status["state"] == "Failed"
    assert stalled["status"] == "True"
    assert stalled["reason"] == "BackoffLimitExceeded"
    changed = {**BODY, "metadata": {**BODY["metadata"], "generation": 2}, "status": status}
    later = Recorder()
    _run(TrainingSnapshot(changed, {}, service, []), later)
    assert later.applied == [], "a finished job is not started again by a spec change"
    assert later.statuses[-1]["state"] == "Failed"
    assert later.statuses[-1]["observedGeneration"] == 2


def test_a_changed_pod_template_recreates_the_job() -> None:
    api = Recorder()
    _run(TrainingSnapshot(BODY, {}, None, []), api)
    jobs, service = _live(api)
    changed = copy.deepcopy(BODY)
    changed["metadata"]["generation"] = 2
    changed["spec"]["replicaSpecs"]["worker"]["image"] = "img:2"
    again = Recorder()
    _run(TrainingSnapshot(changed, jobs, service, []), again)
    assert again.deleted == ["Job/t-worker"]
    assert "Recreating" in again.events


def test_refusal_stalls_and_forbidden_is_retried() -> None:
    refused = Recorder(refuse=422)
    _run(TrainingSnapshot(BODY, {}, None, []), refused)
    stalled = next(c for c in refused.statuses[-1]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    forbidden = Recorder(refuse=403)
    with pytest.raises(ApiException):
        _run(TrainingSnapshot(BODY, {}, None, []), forbidden)
    stalled = next(c for c in forbidden.statuses[-1]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "Forbidden"


def test_a_running_evaluator_gets_a_grace_period_to_score_the_last_checkpoint() -> None:
    body = copy.deepcopy(BODY)
    body["spec"]["replicaSpecs"]["evaluator"] = {"replicas": 1, "image": "img"}
    body["spec"]["checkpoints"] = {"storageUri": "pvc://ckpt/t"}
    body["spec"]["runPolicy"] = {"cleanPodPolicy": "Running"}
    api = Recorder()
    _run(TrainingSnapshot(body, {}, None, []), api)
    jobs, service = _live(api)
    _complete(jobs["chief"])
    _complete(jobs["worker"])
    del jobs["ps"]  # cleaned up already
    jobs["evaluator"]["status"] = {"active": 1}
    finished = {
        **body,
        "status": {"state": "Succeeded", "completionTime": "2026-01-01T00:10:00Z"},
    }
    end = 1767225600.0 + 600
    early = Recorder()
    wait = _run(TrainingSnapshot(finished, jobs, service, []), early, clock=end + 10)
    assert early.deleted == []
    assert wait == 50.0
    late = Recorder()
    assert _run(TrainingSnapshot(finished, jobs, service, []), late, clock=end + 61) is None
    assert late.deleted == ["Job/t-evaluator"]
