"""ModelDeployment status from what the children report: replicas, URLs, and the conditions
Ready plus the kstatus pair Reconciling / Stalled, with reasons a user can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from ..resources.names import (
    ModelDeploymentRef,
    grpc_address,
    rest_url,
    selector_string,
)
from ..resources.scaledobject import Blocker
from ..resources.storage import FETCH_CONTAINER
from .scaling import SCALING_ACTIVE, ScaleState, autoscaling_status, scaling_condition

# Waiting reasons that need the user to act: a retry with the same spec cannot fix them.
STALLING_WAIT_REASONS = {
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
}


@dataclass(frozen=True)
class Problem:
    """Why pods are not ready, in the words the user needs."""

    reason: str
    message: str
    stalls: bool


def pod_problem(pod: dict[str, Any]) -> Problem | None:
    """The first thing keeping one pod from Ready, if the pod says what it is."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status", {})
    for cond in status.get("conditions", []):
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return Problem(
                cond.get("reason") or "Unschedulable",
                f"pod {name}: {cond.get('message', 'not scheduled')}",
                stalls=False,
            )
    for init in status.get("initContainerStatuses", []):
        terminated = init.get("state", {}).get("terminated") or init.get("lastState", {}).get(
            "terminated"
        )
        if init.get("name") == FETCH_CONTAINER and terminated and terminated.get("exitCode"):
            detail = (terminated.get("message") or terminated.get("reason") or "").strip()
            detail = detail or f"exit code {terminated['exitCode']}"
            return Problem(
                "ModelFetchFailed", f"pod {name}: cannot read storageUri: {detail}", stalls=True
            )
    for container in [
        *status.get("initContainerStatuses", []),
        *status.get("containerStatuses", []),
    ]:
        waiting = container.get("state", {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in {"PodInitializing", "ContainerCreating"}:
            detail = waiting.get("message", "")
            last = container.get("lastState", {}).get("terminated") or {}
            if reason == "CrashLoopBackOff" and (last.get("message") or "").strip():
                # The server's own reason for exiting (a bad flag, TLS material without ca.crt).
                detail = f"last exit: {last['message'].strip()}"
            return Problem(
                reason,
                f"pod {name} container {container.get('name')}: {reason}"
                + (f": {detail}" if detail else ""),
                stalls=reason in STALLING_WAIT_REASONS,
            )
    return None


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str
    message: str
    stalled: bool


def judge(
    spec: ModelDeploymentSpec,
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    apply_error: str | None,
    replicas: int | None = None,
) -> Verdict:
    """One verdict from the children's own status, failures first. `replicas` is the count
    asked of the Deployment (the autoscaler's, when it owns it); default spec.replicas."""
    if apply_error:
        return Verdict(False, "InvalidSpec", apply_error, stalled=True)
    if deployment is None:
        return Verdict(False, "Creating", "creating the model-server Deployment", stalled=False)
    desired = spec.replicas if replicas is None else replicas
    dep_status = deployment.get("status", {})
    if dep_status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return Verdict(
            False,
            "RollingOut",
            "the Deployment controller has not seen the change yet",
            stalled=False,
        )
    for cond in dep_status.get("conditions", []):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            problem = _first_problem(pods)
            detail = f": {problem.message}" if problem else ""
            return Verdict(
                False,
                "ProgressDeadlineExceeded",
                f"rollout made no progress in time{detail}",
                stalled=True,
            )
    updated = dep_status.get("updatedReplicas", 0)
    available = dep_status.get("availableReplicas", 0)
    total = dep_status.get("replicas", 0)
    if updated >= desired and available >= desired and total == desired:
        if desired == 0:
            return Verdict(True, "ScaledToZero", "scaled to zero replicas", stalled=False)
        return Verdict(True, "Available", f"{available}/{desired} replicas ready", stalled=False)
    problem = _first_problem(pods)
    if problem:
        return Verdict(False, problem.reason, problem.message, stalled=problem.stalls)
    return Verdict(
        False,
        "RollingOut",
        f"{available}/{desired} replicas ready, {updated} updated",
        stalled=False,
    )


def _first_problem(pods: list[dict[str, Any]]) -> Problem | None:
    # Newest pods first: they run the current spec.
    ordered = sorted(
        pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp", ""), reverse=True
    )
    for pod in ordered:
        if pod_ready(pod):
            continue
        problem = pod_problem(pod)
        if problem:
            return problem
    return None


def condition(
    kind: str,
    true: bool | str,
    reason: str,
    message: str,
    generation: int,
    previous: dict[str, dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    """`true` is a bool, or a condition status string ("Unknown")."""
    status = true if isinstance(true, str) else ("True" if true else "False")
    before = previous.get(kind)
    # lastTransitionTime moves only when the status flips.
    since = (
        before["lastTransitionTime"]
        if before and before.get("status") == status and (before.get("lastTransitionTime"))
        else now
    )
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def build_status(
    ref: ModelDeploymentRef,
    spec: ModelDeploymentSpec,
    verdict: Verdict,
    deployment: dict[str, Any] | None,
    previous: dict[str, Any],
    now: str,
    model_version: str | None = None,
    *,
    replicas: int | None = None,
    scale: ScaleState | None = None,
    scaling_blocker: Blocker | None = None,
) -> dict[str, Any]:
    dep_status = (deployment or {}).get("status", {})
    old = {c["type"]: c for c in previous.get("conditions", []) if "type" in c}
    g = ref.generation
    reconciling = not verdict.ready and not verdict.stalled
    status: dict[str, Any] = {
        "observedGeneration": g,
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": dep_status.get("readyReplicas", 0),
        "updatedReplicas": dep_status.get("updatedReplicas", 0),
        "selector": selector_string(ref),
        "url": rest_url(ref, spec),
        "grpcUrl": grpc_address(ref),
        "conditions": [
            condition("Ready", verdict.ready, verdict.reason, verdict.message, g, old, now),
            condition(
                "Reconciling",
                reconciling,
                verdict.reason if reconciling else "Idle",
                verdict.message if reconciling else "",
                g,
                old,
                now,
            ),
            condition(
                "Stalled",
                verdict.stalled,
                verdict.reason if verdict.stalled else "Idle",
                verdict.message if verdict.stalled else "",
                g,
                old,
                now,
            ),
        ],
    }
    if model_version:
        status["modelVersion"] = model_version
    desired = spec.replicas if replicas is None else replicas
    autoscaling = autoscaling_status(
        spec, desired, scale, previous, name=ref.name, blocker=scaling_blocker
    )
    if autoscaling is not None:
        status["autoscaling"] = autoscaling
    active = scaling_condition(spec, scale, previous, scaling_blocker)
    if active is not None:
        cond_status, reason, message = active
        status["conditions"].append(
            condition(SCALING_ACTIVE, cond_status, reason, message, g, old, now)
        )
    return status


def invalid_spec_status(
    ref: ModelDeploymentRef, message: str, previous: dict[str, Any], now: str
) -> dict[str, Any]:
    """Status for a spec the operator cannot even read: Stalled, nothing else claimed."""
    old = {c["type"]: c for c in previous.get("conditions", []) if "type" in c}
    g = ref.generation
    return {
        "observedGeneration": g,
        "selector": selector_string(ref),
        "conditions": [
            condition("Ready", False, "InvalidSpec", message, g, old, now),
            condition("Reconciling", False, "Idle", "", g, old, now),
            condition("Stalled", True, "InvalidSpec", message, g, old, now),
        ],
    }
