"""Where a TrainingJob is in its life, judged from its role Jobs and pods. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...resources.trainingjob.names import ROLES
from ..status import pod_problem

TERMINAL = ("Succeeded", "Failed")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


@dataclass(frozen=True)
class Judgement:
    state: str  # Pending | Running | Succeeded | Failed | Suspended
    reason: str
    message: str
    finished_at: str | None = None  # completion (or failure) time, from the Job when it says


def job_condition(job: dict[str, Any], *kinds: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in kinds and cond.get("status") == "True":
            found: dict[str, Any] = cond
            return found
    return None


def replica_statuses(jobs: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per role: pods running or pending, succeeded and failed, as the role's Job counts them."""
    counts = {}
    for role in ROLES:
        job = jobs.get(role)
        if job is None:
            continue
        status = job.get("status") or {}
        counts[role] = {k: int(status.get(k) or 0) for k in ("active", "succeeded", "failed")}
    return counts


def _failure(jobs: dict[str, dict[str, Any]]) -> Judgement | None:
    for role in ROLES:
        job = jobs.get(role)
        cond = job and job_condition(job, "Failed", "FailureTarget")
        if job and cond:
            reason = str(cond.get("reason") or "Failed")
            message = (
                f"{role} Job {job['metadata']['name']} failed: {cond.get('message') or reason}"
            )
            return Judgement("Failed", reason, message, cond.get("lastTransitionTime"))
    return None


def judge(
    jobs: dict[str, dict[str, Any]],
    pods: list[dict[str, Any]],
    exporter_role: str,
    suspended: bool,
) -> Judgement:
    """Failed when any role's Job failed (backoff limit, deadline, a non-retryable exit code);
    Succeeded when the exporter's Job (the chief's, else the workers' whose success policy is
    worker 0) completed; otherwise Suspended, Running or Pending."""
    failed = _failure(jobs)
    if failed is not None:
        return failed
    exporter = jobs.get(exporter_role)
    done = exporter and job_condition(exporter, "Complete", "SuccessCriteriaMet")
    if exporter and done:
        finished = (exporter.get("status") or {}).get("completionTime") or done.get(
            "lastTransitionTime"
        )
        return Judgement(
            "Succeeded",
            "Succeeded",
            f"{exporter_role} {exporter['metadata']['name']} completed",
            finished,
        )
    if suspended:
        return Judgement("Suspended", "Suspended", "runPolicy.suspend is true: no pods run")
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    if running:
        return Judgement("Running", "Running", f"{len(running)} pod(s) running")
    for pod in pods:
        problem = pod_problem(pod)
        if problem is not None:
            return Judgement("Pending", problem.reason, problem.message)
    if any((p.get("status") or {}).get("phase") == "Succeeded" for p in pods):
        # The Job controller marks a Job Complete a moment after its last pod ends: the job is
        # finishing, not back to waiting for pods.
        return Judgement("Running", "Running", "pods finished; waiting for the Jobs to complete")
    return Judgement("Pending", "Pending", "waiting for pods to start")


def exporter_pod(pods: list[dict[str, Any]], role: str, role_label: str) -> dict[str, Any] | None:
    """Index 0 of the exporting role: the newest such pod (a retried one replaces the old)."""
    candidates = [
        p
        for p in pods
        if (p.get("metadata", {}).get("labels") or {}).get(role_label) == role
        and (p.get("metadata", {}).get("annotations") or {}).get(COMPLETION_INDEX) == "0"
    ]
    candidates.sort(key=lambda p: str(p.get("metadata", {}).get("creationTimestamp") or ""))
    return candidates[-1] if candidates else None


def termination_message(pod: dict[str, Any], container: str) -> str | None:
    """The message of a container that exited 0 (in its current or last state)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") != container:
            continue
        for key in ("state", "lastState"):
            ended = (status.get(key) or {}).get("terminated") or {}
            if ended.get("exitCode") == 0 and ended.get("message"):
                return str(ended["message"])
    return None


def first_started(pods: list[dict[str, Any]]) -> str | None:
    """When the earliest container of these pods started, running or since ended: a task that
    ran and exited between two looks was never seen Running, but it did run."""
    starts = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            for key in ("state", "lastState"):
                for phase in ("running", "terminated"):
                    started = ((status.get(key) or {}).get(phase) or {}).get("startedAt")
                    if started:
                        starts.append(str(started))
    return min(starts) if starts else None
