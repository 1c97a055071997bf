"""The pod status a kubelet would report, from what happened to each container."""

from __future__ import annotations

from modelship_localcluster.processpods.status import (
    ContainerView,
    PodReport,
    Running,
    Terminated,
    Waiting,
    container_status,
    pod_phase,
    pod_status,
    strategic_patch,
    timestamp,
)

T0 = 1_800_000_000.0


def running(name: str, ready: bool) -> ContainerView:
    return ContainerView(name, "img", Running(T0), ready=ready, started=True, pid=42)


def test_container_status_carries_state_last_state_and_process_id() -> None:
    last = Terminated(3, "Error", "boom", T0, T0 + 5, pid=41)
    view = ContainerView(
        "app", "img:1", Waiting("CrashLoopBackOff", "back-off 10s"), last, 2, pid=None
    )
    status = container_status(view)
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert status["lastState"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "message": "boom",
        "startedAt": timestamp(T0),
        "finishedAt": timestamp(T0 + 5),
        "containerID": "process://41",
    }
    assert status["restartCount"] == 2
    assert status["imageID"] == ""
    assert "containerID" not in status


def test_phase_follows_the_restart_policy() -> None:
    done_ok = ContainerView("a", "i", Terminated(0, "Completed", "", T0, T0))
    done_bad = ContainerView("a", "i", Terminated(1, "Error", "", T0, T0))
    fresh = ContainerView("a", "i", Waiting("ContainerCreating"))
    assert pod_phase("Never", [], [done_ok], init_done=True) == "Succeeded"
    assert pod_phase("Never", [], [done_bad], init_done=True) == "Failed"
    assert pod_phase("OnFailure", [], [done_ok], init_done=True) == "Succeeded"
    assert pod_phase("Always", [], [done_ok], init_done=True) == "Running"
    assert pod_phase("Always", [], [fresh], init_done=True) == "Pending"
    assert pod_phase("Always", [done_bad], [fresh], init_done=False) == "Pending"
    assert pod_phase("Never", [done_bad], [fresh], init_done=False) == "Failed"


def test_conditions_move_their_transition_time_only_on_change() -> None:
    report = PodReport(
        "Always", "127.77.0.2", T0, [], [running("a", True), running("b", False)], True, True
    )
    first = pod_status(report, [], T0 + 1)
    conditions = {c["type"]: c for c in first["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["message"] == "containers with unready status: [b]"
    assert conditions["Initialized"]["status"] == "True"
    later = pod_status(report, first["conditions"], T0 + 100)
    assert later == first
    ready = PodReport(
        "Always", "127.77.0.2", T0, [], [running("a", True), running("b", True)], True, True
    )
    flipped = {c["type"]: c for c in pod_status(ready, first["conditions"], T0 + 200)["conditions"]}
    assert flipped["Ready"]["status"] == "True"
    assert flipped["Ready"]["lastTransitionTime"] == timestamp(T0 + 200)
    assert flipped["Initialized"]["lastTransitionTime"] == timestamp(T0 + 1)
    assert first["podIPs"] == [{"ip": "127.77.0.2"}]


def test_patch_nulls_the_state_fields_a_merge_would_keep() -> None:
    report = PodReport("Always", None, T0, [], [running("a", True)], True, True)
    patch = strategic_patch(pod_status(report, [], T0))
    (item,) = patch["status"]["containerStatuses"]
    assert item["state"]["waiting"] is None
    assert item["state"]["terminated"] is None
    assert item["state"]["running"] == {"startedAt": timestamp(T0)}
    assert item["lastState"] == {"waiting": None, "running": None, "terminated": None}
