"""The pod status a kubelet reports, built from what happened to each container. Pure."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOST_IP = "127.0.0.1"
CONDITION_TYPES = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def timestamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: float


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    message: str
    started_at: float
    finished_at: float
    pid: int | None = None


State = Waiting | Running | Terminated


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


@dataclass(frozen=True)
class ContainerView:
    name: str
    image: str
    state: State
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    pid: int | None = None


def _container_id(pid: int | None) -> str | None:
    return f"process://{pid}" if pid else None


def state_dict(state: State | None) -> dict[str, Any]:
    if isinstance(state, Waiting):
        waiting: dict[str, Any] = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": timestamp(state.started_at)}}
    if isinstance(state, Terminated):
        terminated: dict[str, Any] = {
            "exitCode": state.exit_code,
            "reason": state.reason,
            "startedAt": timestamp(state.started_at),
            "finishedAt": timestamp(state.finished_at),
        }
        if state.message:
            terminated["message"] = state.message
        if state.pid:
            terminated["containerID"] = _container_id(state.pid)
        return {"terminated": terminated}
    return {}


def container_status(view: ContainerView) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": view.name,
        "image": view.image,
        "imageID": "",
        "ready": view.ready,
        "started": view.started,
        "restartCount": view.restart_count,
        "state": state_dict(view.state),
        "lastState": state_dict(view.last_state),
    }
    container_id = _container_id(view.pid)
    if container_id:
        status["containerID"] = container_id
    return status


def pod_phase(
    restart_policy: str,
    init_views: Sequence[ContainerView],
    views: Sequence[ContainerView],
    *,
    init_done: bool,
) -> str:
    """Pending until the containers run, Running while any runs or will restart, then
    Succeeded or Failed once every container has stopped for good."""
    if not init_done:
        failed_init = any(
            isinstance(v.state, Terminated) and v.state.exit_code != 0 for v in init_views
        )
        return "Failed" if failed_init and restart_policy == "Never" else "Pending"
    final = [v.state for v in views if isinstance(v.state, Terminated)]
    finished = len(final) == len(views) and all(
        restart_policy == "Never" or (restart_policy == "OnFailure" and s.exit_code == 0)
        for s in final
    )
    if views and finished:
        return "Succeeded" if all(s.exit_code == 0 for s in final) else "Failed"
    ever_ran = any(
        not isinstance(v.state, Waiting) or v.restart_count > 0 or v.last_state for v in views
    )
    return "Running" if ever_ran else "Pending"


def _condition(
    kind: str,
    true: bool,
    reason: str | None,
    message: str | None,
    previous: Mapping[str, Mapping[str, Any]],
    now: float,
) -> dict[str, Any]:
    status = "True" if true else "False"
    before = previous.get(kind) or {}
    # lastTransitionTime moves only when the status flips.
    since = (
        before["lastTransitionTime"]
        if before.get("status") == status and before.get("lastTransitionTime")
        else timestamp(now)
    )
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_conditions(
    previous: Iterable[Mapping[str, Any]],
    now: float,
    *,
    phase: str,
    sandbox_ready: bool,
    not_initialized: Sequence[str],
    not_ready: Sequence[str],
) -> list[dict[str, Any]]:
    before = {c.get("type", ""): c for c in previous}
    scheduled = dict(before.get("PodScheduled") or {})
    conditions = [
        _condition("PodScheduled", True, None, None, {"PodScheduled": scheduled}, now),
        _condition("PodReadyToStartContainers", sandbox_ready, None, None, before, now),
    ]
    completed = phase in ("Succeeded", "Failed")
    if completed:
        conditions.append(_condition("Initialized", True, "PodCompleted", None, before, now))
        for kind in ("ContainersReady", "Ready"):
            conditions.append(_condition(kind, False, "PodCompleted", None, before, now))
        return conditions
    conditions.append(
        _condition(
            "Initialized",
            not not_initialized,
            "ContainersNotInitialized" if not_initialized else None,
            f"containers with incomplete status: [{' '.join(not_initialized)}]"
            if not_initialized
            else None,
            before,
            now,
        )
    )
    message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else None
    for kind in ("ContainersReady", "Ready"):
        conditions.append(
            _condition(
                kind,
                not not_ready,
                "ContainersNotReady" if not_ready else None,
                message,
                before,
                now,
            )
        )
    return conditions


@dataclass(frozen=True)
class PodReport:
    restart_policy: str
    pod_ip: str | None
    start_time: float
    init_views: Sequence[ContainerView]
    views: Sequence[ContainerView]
    init_done: bool
    sandbox_ready: bool


def pod_status(
    report: PodReport, previous_conditions: Iterable[Mapping[str, Any]], now: float
) -> dict[str, Any]:
    phase = pod_phase(
        report.restart_policy, report.init_views, report.views, init_done=report.init_done
    )
    not_initialized = (
        [] if report.init_done else [v.name for v in report.init_views if not _completed(v)]
    )
    not_ready = [v.name for v in report.views if not v.ready]
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "startTime": timestamp(report.start_time),
        "conditions": pod_conditions(
            previous_conditions,
            now,
            phase=phase,
            sandbox_ready=report.sandbox_ready,
            not_initialized=not_initialized,
            not_ready=not_ready,
        ),
        "containerStatuses": [container_status(v) for v in report.views],
    }
    if report.pod_ip:
        status["podIP"] = report.pod_ip
        status["podIPs"] = [{"ip": report.pod_ip}]
    if report.init_views:
        status["initContainerStatuses"] = [container_status(v) for v in report.init_views]
    return status


def _completed(view: ContainerView) -> bool:
    return isinstance(view.state, Terminated) and view.state.exit_code == 0


STATE_KEYS = ("waiting", "running", "terminated")
STATE_FIELDS = {
    "waiting": ("reason", "message"),
    "running": ("startedAt",),
    "terminated": (
        "exitCode",
        "signal",
        "reason",
        "message",
        "startedAt",
        "finishedAt",
        "containerID",
    ),
}


def _full(key: str, value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Every field of a state named, so a merge cannot keep an old message or exit code."""
    if value is None:
        return None
    return {field: value.get(field) for field in STATE_FIELDS[key]}


def strategic_patch(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status patch that replaces each container's state rather than merging into it: a
    strategic merge patch merges list items by name, so every absent state key is nulled."""
    patched = dict(status)
    for key in ("containerStatuses", "initContainerStatuses"):
        if key not in status:
            continue
        items = []
        for reported in status[key]:
            item = dict(reported)
            for field in ("state", "lastState"):
                item[field] = {k: _full(k, item[field].get(k)) for k in STATE_KEYS}
            item.setdefault("containerID", None)
            items.append(item)
        patched[key] = items
    patched["conditions"] = [
        {"reason": None, "message": None, **condition} for condition in status["conditions"]
    ]
    return {"status": patched}
