"""kstatus (sigs.k8s.io/cli-utils, what Flux and kpt compute) on our objects as the real control
plane and the operator make them: every version a watch saw is judged, not just the last one.

A failed TrainingJob is failed by the real Job controller: its pod cannot be scheduled (no node
has the label it selects) and runPolicy.activeDeadlineSeconds runs out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from gitops_helpers import (
    conditions,
    kstatus,
    kstatus_live,
    kwok_role,
    training_job,
    watching,
)
from kube_helpers import apply, model_deployment, new_namespace
from modelship_localcluster.cluster import LocalCluster

NOWHERE = {"nodeSelector": {"modelship.dev/no-such-node": "true"}}


@pytest.fixture
def ns(operator: LocalCluster) -> Iterator[str]:
    name = new_namespace(operator, "gitops-ks")
    yield name
    operator.kubectl("delete", "namespace", name, "--wait=false", check=False)


def ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and conditions(obj).get("Ready") == "True"
    )


def test_new_modeldeployment_is_in_progress_until_ready_then_current(
    operator: LocalCluster, ns: str
) -> None:
    with watching(operator, ns, "modeldeployments") as watch:
        apply(operator, ns, model_deployment("fresh", replicas=2))
        watch.until("Ready", "fresh", ready)
        versions = watch.versions("fresh")
    judged = [(obj, kstatus(obj)) for obj in versions if obj.get("status")]
    before = [(obj, res) for obj, res in judged if not ready(obj)]
    # The operator's first status says why it is not ready yet: the replicas are starting.
    assert before, [o.get("status") for o in versions]
    for obj, (status, message) in before:
        assert status == "InProgress", (obj["status"], message)
        assert message, obj["status"]
    after = [res for obj, res in judged if ready(obj)]
    assert after
    assert all(status == "Current" for status, _ in after), after
    assert kstatus_live(operator, ns, "modeldeployment", "fresh")[0] == "Current"
    assert kstatus_live(operator, ns, "mdep", "fresh")[0] == "Current"


def test_spec_change_is_in_progress_until_observed(operator: LocalCluster, ns: str) -> None:
    with watching(operator, ns, "modeldeployments") as watch:
        apply(operator, ns, model_deployment("change", replicas=1))
        watch.until("Ready", "change", ready)
        changed = model_deployment(
            "change", replicas=1, server={"env": [{"name": "LOG_LEVEL", "value": "debug"}]}
        )
        # The object as the apply wrote it: the new generation, the status not yet updated.
        written = json.loads(
            operator.kubectl(
                "apply",
                "--server-side",
                "-n",
                ns,
                "-o",
                "json",
                "-f",
                "-",
                input_text=yaml.safe_dump(changed),
            ).stdout
        )
        generation = written["metadata"]["generation"]
        assert generation == 2
        assert written["status"]["observedGeneration"] == 1
        status, message = kstatus(written)
        assert status == "InProgress"
        assert message == "ModelDeployment generation is 2, but latest observed generation is 1"
        watch.until(
            "generation 2 Ready", "change", lambda o: ready(o) and o["metadata"]["generation"] == 2
        )
        versions = [o for o in watch.versions("change") if o["metadata"]["generation"] == 2]
    unobserved = [o for o in versions if o["status"]["observedGeneration"] != 2]
    assert unobserved  # the watch saw the spec write before the operator's status
    for obj in unobserved:
        assert kstatus(obj)[0] == "InProgress"
    for obj in versions:
        if ready(obj):
            assert kstatus(obj)[0] == "Current"
    assert kstatus_live(operator, ns, "modeldeployments.modelship.dev", "change")[0] == "Current"


def test_unschedulable_modeldeployment_is_in_progress_with_the_scheduler_message(
    operator: LocalCluster, ns: str
) -> None:
    with watching(operator, ns, "modeldeployments") as watch:
        apply(operator, ns, model_deployment("huge", gpu={"count": 16}))
        stuck = watch.until(
            "the scheduler's reason",
            "huge",
            lambda o: "Insufficient nvidia.com/gpu" in json.dumps(o.get("status") or {}),
        )
    status, message = kstatus(stuck)
    assert status == "InProgress"
    assert "Insufficient nvidia.com/gpu" in message
    assert "nodes are available" in message
    status, message = kstatus_live(operator, ns, "modeldeployment", "huge")
    assert (status, "Insufficient nvidia.com/gpu" in message) == ("InProgress", True)


def test_image_pull_failure_is_failed(operator: LocalCluster, ns: str) -> None:
    apply(operator, ns, model_deployment("badimage", server={"image": "kwok.invalid/missing:1"}))
    with watching(operator, ns, "modeldeployments") as watch:
        stalled = watch.until(
            "Stalled", "badimage", lambda o: conditions(o).get("Stalled") == "True"
        )
    status, message = kstatus(stalled)
    assert status == "Failed"
    assert "kwok.invalid/missing:1" in message


def test_trainingjob_is_in_progress_then_current_when_it_succeeds(
    operator: LocalCluster, ns: str
) -> None:
    with watching(operator, ns, "trainingjobs") as watch:
        apply(operator, ns, training_job("fine", {"worker": kwok_role()}))
        done = watch.until(
            "Succeeded", "fine", lambda o: (o.get("status") or {}).get("state") == "Succeeded"
        )
        versions = watch.versions("fine")
    running = [
        o for o in versions if (o.get("status") or {}).get("state") in ("Pending", "Running")
    ]
    assert running
    for obj in running:
        assert kstatus(obj)[0] == "InProgress", obj["status"]
    assert kstatus(done)[0] == "Current"
    assert kstatus_live(operator, ns, "trainingjob", "fine")[0] == "Current"


def test_failed_trainingjob_is_failed(operator: LocalCluster, ns: str) -> None:
    apply(
        operator,
        ns,
        training_job("late", {"worker": kwok_role(**NOWHERE)}, activeDeadlineSeconds=2),
    )
    with watching(operator, ns, "trainingjobs") as watch:
        failed = watch.until(
            "Failed", "late", lambda o: (o.get("status") or {}).get("state") == "Failed", 60
        )
    status, message = kstatus(failed)
    assert status == "Failed"
    assert message  # the Job controller's words: the deadline ran out
    assert kstatus_live(operator, ns, "trainingjob", "late")[0] == "Failed"
