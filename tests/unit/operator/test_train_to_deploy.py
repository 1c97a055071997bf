"""A ModelDeployment naming a TrainingJob: what it serves, what it waits for, and the roll."""

from __future__ import annotations

import copy
from typing import Any

from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.plan import Snapshot
from modelship_operator.controller.reconcile import reconcile
from modelship_operator.controller.trained_model import (
    MODEL_URI_ANNOTATION,
    Resolved,
    Waiting,
    resolve,
)
from modelship_operator.resources.names import ModelDeploymentRef

BODY: dict[str, Any] = {
    "kind": "ModelDeployment",
    "metadata": {"name": "digits", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {"trainingJobName": "train-digits"},
}
SPEC = ModelDeploymentSpec.model_validate(BODY["spec"])


def _job(exported: str | None = None, state: str = "Running", **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"state": state, "progress": {"percent": 40}}
    if exported:
        status["exportedModelUri"] = exported
    return {
        "kind": "TrainingJob",
        "metadata": {"name": "train-digits", "namespace": "ns"},
        "spec": {"output": {"storageUri": "s3://models/digits", **spec}},
        "status": status,
    }


class Recorder:
    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[str] = []

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return obj

    def delete(self, obj: dict[str, Any]) -> None:
        raise AssertionError("nothing is deleted")

    def apply_status(self, ref: ModelDeploymentRef, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, ref: ModelDeploymentRef, type_: str, reason: str, message: str) -> None:
        self.events.append(reason)


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_the_newest_export_is_served_from_its_base_path_with_the_jobs_secret() -> None:
    job = _job("s3://models/digits/1796200000", storageSecretName="s3-creds")
    resolved = resolve(SPEC, job, None)
    assert isinstance(resolved, Resolved)
    assert resolved.spec.storage_uri == "s3://models/digits"
    assert resolved.spec.storage_secret_name == "s3-creds"
    assert resolved.model_uri == "s3://models/digits/1796200000"


def test_the_deployments_own_secret_wins_and_mounted_storage_takes_none() -> None:
    own = ModelDeploymentSpec.model_validate({**BODY["spec"], "storageSecretName": "mine"})
    resolved = resolve(own, _job("s3://models/digits/7", storageSecretName="theirs"), None)
    assert isinstance(resolved, Resolved)
    assert resolved.spec.storage_secret_name == "mine"
    pvc = resolve(own, _job("pvc://claim/digits/7"), None)
    assert isinstance(pvc, Resolved)
    assert pvc.spec.storage_secret_name is None


def test_waiting_names_the_job_its_state_and_progress() -> None:
    waiting = resolve(SPEC, _job(), None)
    assert isinstance(waiting, Waiting)
    assert not waiting.stalled
    assert waiting.reason == "WaitingForTraining"
    assert "train-digits" in waiting.message
    assert "40%" in waiting.message
    missing = resolve(SPEC, None, None)
    assert isinstance(missing, Waiting)
    assert missing.reason == "TrainingJobNotFound"
    failed = resolve(SPEC, _job(state="Failed"), None)
    assert isinstance(failed, Waiting)
    assert failed.stalled
    no_output = _job()
    del no_output["spec"]["output"]
    nothing = resolve(SPEC, no_output, None)
    assert isinstance(nothing, Waiting)
    assert nothing.reason == "NoModelExported"


def test_a_job_run_again_keeps_serving_the_previous_export_until_it_exports() -> None:
    deployment = {
        "spec": {"template": {"metadata": {"annotations": {MODEL_URI_ANNOTATION: "s3://m/d/5"}}}}
    }
    resolved = resolve(SPEC, _job(state="Pending"), deployment)
    assert isinstance(resolved, Resolved)
    assert resolved.model_uri == "s3://m/d/5"


def test_reconcile_waits_without_children_then_rolls_on_each_new_export() -> None:
    api = Recorder()
    reconcile(Snapshot(BODY, {}, [], training_job=_job()), api)
    assert api.applied == []
    assert _ready(api.statuses[-1])["reason"] == "WaitingForTraining"

    api = Recorder()
    reconcile(Snapshot(BODY, {}, [], training_job=_job("s3://models/digits/100")), api)
    deployment = next(o for o in api.applied if o["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"][MODEL_URI_ANNOTATION] == "s3://models/digits/100"
    fetch = template["spec"]["initContainers"][0]
    assert "--uri=s3://models/digits" in fetch["command"]

    live = {o["kind"]: copy.deepcopy(o) for o in api.applied}
    api = Recorder()
    reconcile(Snapshot(BODY, live, [], training_job=_job("s3://models/digits/100")), api)
    assert api.applied == [], "the same export rewrites nothing"
    api = Recorder()
    reconcile(Snapshot(BODY, live, [], training_job=_job("s3://models/digits/200")), api)
    assert [o["kind"] for o in api.applied] == ["Deployment"], "a newer export rolls the pods"
