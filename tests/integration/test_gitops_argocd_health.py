"""The Argo CD health scripts in docs/argocd/ run in gopher-lua (Argo CD's Lua VM, with the
libraries Argo CD opens) against our objects as the real control plane and the operator make them,
in each state. Every version a watch saw is judged, and agrees with kstatus where both speak."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from gitops_helpers import (
    argo_health,
    conditions,
    kstatus,
    kwok_role,
    training_job,
    watching,
)
from kube_helpers import apply, model_deployment, new_namespace
from modelship_localcluster.cluster import LocalCluster

# What kstatus's verdict means in Argo CD's words. kstatus has no "suspended": a suspended
# TrainingJob (Ready=False, nothing reconciling) is InProgress to it, as a suspended Job is.
AGREES = {
    "InProgress": {"Progressing", "Suspended"},
    "Current": {"Healthy"},
    "Failed": {"Degraded"},
}


@pytest.fixture
def ns(operator: LocalCluster) -> Iterator[str]:
    name = new_namespace(operator, "gitops-argo")
    yield name
    operator.kubectl("delete", "namespace", name, "--wait=false", check=False)


def state(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("state")


def judge_all(kind: str, versions: list[dict[str, Any]]) -> list[str]:
    """Argo CD's status for each version; each one agrees with kstatus once the operator has
    written a status (kstatus calls an object without status Current; Argo CD, by our script,
    Progressing)."""
    verdicts = []
    for obj in versions:
        health = argo_health(kind, obj)
        assert health["message"], (obj.get("status"), health)
        if obj.get("status"):
            ks, message = kstatus(obj)
            assert health["status"] in AGREES[ks], (obj["status"], health, ks, message)
        else:
            assert health["status"] == "Progressing", health
        verdicts.append(health["status"])
    return verdicts


def test_modeldeployment_health_in_each_state(operator: LocalCluster, ns: str) -> None:
    with watching(operator, ns, "modeldeployments") as watch:
        apply(operator, ns, model_deployment("hp2", replicas=2))
        apply(operator, ns, model_deployment("huge", gpu={"count": 16}))
        apply(operator, ns, model_deployment("badimage", server={"image": "kwok.invalid/x:1"}))

        healthy = watch.until("Healthy", "hp2", lambda o: conditions(o).get("Ready") == "True")
        assert argo_health("ModelDeployment", healthy)["status"] == "Healthy"
        # A spec change: Progressing until the operator has observed it.
        changed = model_deployment(
            "hp2", replicas=2, server={"env": [{"name": "LOG_LEVEL", "value": "debug"}]}
        )
        written = json.loads(
            operator.kubectl(
                "apply",
                "--server-side",
                *("-n", ns, "-o", "json", "-f", "-"),
                input_text=yaml.safe_dump(changed),
            ).stdout
        )
        assert argo_health("ModelDeployment", written) == {
            "status": "Progressing",
            "message": "Waiting for the operator to observe generation 2",
        }
        watch.until(
            "generation 2 Healthy",
            "hp2",
            lambda o: (
                (o.get("status") or {}).get("observedGeneration") == 2
                and argo_health("ModelDeployment", o)["status"] == "Healthy"
            ),
        )
        unschedulable = watch.until(
            "the scheduler's reason",
            "huge",
            lambda o: "Insufficient nvidia.com/gpu" in json.dumps(o.get("status") or {}),
        )
        degraded = watch.until(
            "Stalled", "badimage", lambda o: conditions(o).get("Stalled") == "True"
        )
        versions = {name: watch.versions(name) for name in ("hp2", "huge", "badimage")}

    hp2 = judge_all("ModelDeployment", versions["hp2"])
    # Progressing from creation until Ready, then Healthy; Progressing again for generation 2.
    first_healthy = hp2.index("Healthy")
    assert first_healthy > 0
    assert set(hp2[:first_healthy]) == {"Progressing"}
    assert hp2[-1] == "Healthy"
    judge_all("ModelDeployment", versions["huge"])
    judge_all("ModelDeployment", versions["badimage"])

    health = argo_health("ModelDeployment", unschedulable)
    assert health["status"] == "Progressing"
    assert "Insufficient nvidia.com/gpu" in health["message"]
    health = argo_health("ModelDeployment", degraded)
    assert health["status"] == "Degraded"
    assert health["message"].startswith("ImagePullBackOff: ")
    assert "kwok.invalid/x:1" in health["message"]


def test_trainingjob_health_in_each_state(operator: LocalCluster, ns: str) -> None:
    nowhere = {"nodeSelector": {"modelship.dev/no-such-node": "true"}}
    with watching(operator, ns, "trainingjobs") as watch:
        apply(operator, ns, training_job("fine", {"worker": kwok_role()}))
        apply(operator, ns, training_job("held", {"worker": kwok_role()}, suspend=True))
        # Failed by the real Job controller: its pod can't be scheduled and the deadline runs out.
        apply(
            operator,
            ns,
            training_job("late", {"worker": kwok_role(**nowhere)}, activeDeadlineSeconds=2),
        )
        succeeded = watch.until("Succeeded", "fine", lambda o: state(o) == "Succeeded")
        suspended = watch.until("Suspended", "held", lambda o: state(o) == "Suspended")
        failed = watch.until("Failed", "late", lambda o: state(o) == "Failed")
        versions = {name: watch.versions(name) for name in ("fine", "held", "late")}

    assert argo_health("TrainingJob", succeeded) == {"status": "Healthy", "message": "Succeeded"}
    health = argo_health("TrainingJob", suspended)
    assert health["status"] == "Suspended"
    assert "suspend" in health["message"]
    health = argo_health("TrainingJob", failed)
    assert health["status"] == "Degraded"
    assert health["message"].startswith("DeadlineExceeded: ")

    fine = judge_all("TrainingJob", versions["fine"])
    assert fine[0] == "Progressing"
    assert "Healthy" in fine
    assert set(fine[: fine.index("Healthy")]) == {"Progressing"}
    held = judge_all("TrainingJob", versions["held"])
    assert held[-1] == "Suspended"
    assert set(held) <= {"Progressing", "Suspended"}
    late = judge_all("TrainingJob", versions["late"])
    assert late[-1] == "Degraded"
    assert set(late[: late.index("Degraded")]) == {"Progressing"}
