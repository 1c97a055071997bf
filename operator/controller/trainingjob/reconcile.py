"""One reconcile of one TrainingJob: its Service and role Jobs while it trains; once it has
finished, the clean-up its runPolicy asks for and, after the TTL, its own deletion. Runs in a
worker thread; reads nothing from the API itself."""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ...api.trainingjob import TrainingJobSpec
from ...resources.names import ObjectRef
from ...resources.trainingjob import names
from ...resources.trainingjob.children import desired_children
from ...resources.trainingjob.jobs import job_template_changed
from ...resources.trainingjob.storage import exported_model_uri
from ..compare import contains
from ..plan import INVALID_SPEC, ChildPlan, Event
from ..reconcile import FORBIDDEN, merged_events, utc_now, write_children
from .progress import ProgressProber, from_termination_message
from .state import (
    TERMINAL,
    Judgement,
    exporter_pod,
    first_started,
    job_condition,
    judge,
    replica_statuses,
    termination_message,
)
from .status import build_status, invalid_spec_status

log = logging.getLogger(__name__)
PROGRESS_POLL_SECONDS = 2.0
# How long a running evaluator may go on after the end to score the last checkpoint.
EVALUATOR_GRACE_SECONDS = 60.0


class Writer(Protocol):
    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    def delete(self, obj: dict[str, Any]) -> None: ...
    def apply_status(self, ref: ObjectRef, status: dict[str, Any]) -> None: ...
    def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None: ...


@dataclass
class TrainingSnapshot:
    """What the caches hold for one TrainingJob."""

    body: dict[str, Any]
    jobs: dict[str, dict[str, Any]]  # role → its live Job
    service: dict[str, Any] | None
    pods: list[dict[str, Any]]

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.body)

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.body.get("status") or {}
        return status


def _seconds(timestamp: str) -> float:
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _refused_before(snapshot: TrainingSnapshot) -> bool:
    return any(
        c.get("type") == "Stalled"
        and c.get("status") == "True"
        and c.get("reason") == INVALID_SPEC
        and c.get("observedGeneration") == snapshot.ref.generation
        for c in snapshot.status.get("conditions", [])
    )


def role_of(job: dict[str, Any], owner: str) -> str | None:
    """A role Job is named `<owner>-<role>` (names.job_name)."""
    role = str(job["metadata"]["name"]).removeprefix(f"{owner}-")
    return role if role in names.ROLES else None


def plan_children(snapshot: TrainingSnapshot, spec: TrainingJobSpec) -> ChildPlan:
    """Apply what differs; a Job whose pod template must change (immutable once created) is
    deleted first and created again on the next pass."""
    plan = ChildPlan()
    for want in desired_children(snapshot.ref, spec):
        role = role_of(want, snapshot.ref.name) if want["kind"] == "Job" else None
        live = snapshot.jobs.get(role) if role else snapshot.service
        if live is not None and want["kind"] == "Job" and job_template_changed(live, want):
            name = live["metadata"]["name"]
            message = f"deleted Job {name}: its pod template changed; it is created again"
            plan.delete.append((live, Event("Normal", "Recreating", message)))
            continue
        if live is not None and contains(live, want):
            continue
        verb = "created" if live is None else "updated"
        event = Event(
            "Normal", verb.capitalize(), f"{verb} {want['kind']} {want['metadata']['name']}"
        )
        plan.apply.append((want, event))
    return plan


def cleanup_plan(
    snapshot: TrainingSnapshot, spec: TrainingJobSpec, since_end: float = math.inf
) -> tuple[ChildPlan, float | None]:
    """After the end: All deletes every role Job (and so its pods), Running only the Jobs still
    running (parameter servers, evaluators), None leaves everything. A running evaluator gets
    EVALUATOR_GRACE_SECONDS after the end (`since_end`) to score the last checkpoint and exit
    by itself; returns the plan and how long until that grace is over, if it is pending."""
    plan = ChildPlan()
    wait: float | None = None
    policy = spec.run_policy.clean_pod_policy
    for role in names.ROLES:
        job = snapshot.jobs.get(role)
        if job is None or policy == "None":
            continue
        # FailureTarget and SuccessCriteriaMet come first, while the Job controller still
        # terminates the pods; such a Job has ended too and is not to be cleaned up.
        finished = job_condition(job, "Complete", "Failed", "FailureTarget", "SuccessCriteriaMet")
        if not finished and role == "evaluator" and since_end < EVALUATOR_GRACE_SECONDS:
            wait = EVALUATOR_GRACE_SECONDS - since_end
            continue
        if policy == "All" or not finished:
            message = f"deleted Job {job['metadata']['name']} (cleanPodPolicy {policy})"
            plan.delete.append((job, Event("Normal", "CleanedUp", message)))
    return plan, wait


def _report(
    snapshot: TrainingSnapshot,
    spec: TrainingJobSpec,
    judgement: Judgement,
    prober: ProgressProber | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """Progress and the exported model: asked of the running exporter, or read from its
    termination message once it succeeded; otherwise what the status already says."""
    progress = snapshot.status.get("progress")
    exported = snapshot.status.get("exportedModelUri")
    pod = exporter_pod(snapshot.pods, names.exporter_role(spec), names.ROLE_LABEL)
    if pod is None:
        return progress, exported
    if judgement.state == "Succeeded":
        message = termination_message(pod, names.CONTAINER)
        if message:
            report = from_termination_message(message)
            if report.exported_model_uri and spec.output is not None:
                exported = exported_model_uri(spec.output, report.exported_model_uri)
            return report.progress or progress, exported
    elif judgement.state == "Running" and prober is not None:
        ip = (pod.get("status") or {}).get("podIP")
        if ip and (pod.get("status") or {}).get("phase") == "Running":
            read = prober.read(ip, names.METRICS_PORT)
            if read:
                return read, exported
    return progress, exported


def _transition_events(before: str | None, judgement: Judgement) -> list[Event]:
    if before == judgement.state:
        return []
    if judgement.state == "Failed":
        return [Event("Warning", judgement.reason, judgement.message)]
    if judgement.state in ("Running", "Succeeded", "Suspended"):
        return [Event("Normal", judgement.state, judgement.message)]
    return []


def reconcile_training(
    snapshot: TrainingSnapshot,
    api: Writer,
    prober: ProgressProber | None = None,
    now: Callable[[], str] = utc_now,
    clock: Callable[[], float] = time.time,
) -> float | None:
    """Returns seconds after which to look again without an event (a progress poll or the
    TTL), or None. Transient API errors propagate (the queue retries with backoff)."""
    ref = snapshot.ref
    previous = snapshot.status
    try:
        spec = TrainingJobSpec.model_validate(snapshot.body.get("spec") or {})
    except ValidationError as err:
        status = invalid_spec_status(
            ref, INVALID_SPEC, f"spec does not validate: {err}", previous, now()
        )
        if status != previous:
            api.apply_status(ref, status)
        return None
    if previous.get("state") in TERMINAL:
        return _finished(snapshot, spec, api, now, clock)
    events: list[Event] = []
    if not _refused_before(snapshot):
        done = write_children(plan_children(snapshot, spec), api)
        events += done.events
        if done.refused is not None or done.forbidden is not None:
            reason = INVALID_SPEC if done.refused is not None else FORBIDDEN
            message = done.refused or done.forbidden_message
            status = invalid_spec_status(ref, reason, message, previous, now())
            _write(api, ref, snapshot, status, events)
            if done.forbidden is not None:
                raise done.forbidden  # reported; the queue retries it with backoff
            return None
    judgement = judge(
        snapshot.jobs, snapshot.pods, names.exporter_role(spec), spec.run_policy.suspend
    )
    progress, exported = _report(snapshot, spec, judgement, prober)
    status = build_status(
        ref,
        judgement,
        previous,
        now(),
        replica_statuses=replica_statuses(snapshot.jobs),
        progress=progress,
        exported_model_uri=exported,
        started_at=first_started(snapshot.pods),
    )
    events += _transition_events(previous.get("state"), judgement)
    _write(api, ref, snapshot, status, events)
    if judgement.state == "Running":
        return PROGRESS_POLL_SECONDS
    if judgement.state in TERMINAL:
        return 0.0  # clean up at once
    return None


def _finished(
    snapshot: TrainingSnapshot,
    spec: TrainingJobSpec,
    api: Writer,
    now: Callable[[], str],
    clock: Callable[[], float],
) -> float | None:
    """A finished job stays finished whatever its spec says now; only clean-up and the TTL act."""
    ref = snapshot.ref
    previous = snapshot.status
    finished = previous.get("completionTime")
    since_end = clock() - _seconds(finished) if finished else math.inf
    plan, evaluator_wait = cleanup_plan(snapshot, spec, since_end)
    done = write_children(plan, api)
    status = dict(previous)
    # The Job controller may mark a Job failed (FailureTarget) or succeeded (SuccessCriteriaMet)
    # before it has counted its last pods: the counts follow the Jobs to their final values, and
    # a role whose Job is gone (cleanPodPolicy) keeps what was last seen.
    counts = {**(previous.get("replicaStatuses") or {}), **replica_statuses(snapshot.jobs)}
    if counts:
        status["replicaStatuses"] = counts
    if previous.get("observedGeneration") != ref.generation:
        status["observedGeneration"] = ref.generation
        status["conditions"] = [
            {**c, "observedGeneration": ref.generation} for c in previous.get("conditions", [])
        ]
    _write(api, ref, snapshot, status, done.events)
    ttl = spec.run_policy.ttl_seconds_after_finished
    if ttl is None or not finished:
        return evaluator_wait
    remaining = _seconds(finished) + ttl - clock()
    if remaining > 0:
        return min(remaining, evaluator_wait) if evaluator_wait is not None else remaining
    api.delete(snapshot.body)  # its children go with it (owner references)
    log.info("deleted TrainingJob %s/%s: ttlSecondsAfterFinished passed", ref.namespace, ref.name)
    return None


def _write(
    api: Writer,
    ref: ObjectRef,
    snapshot: TrainingSnapshot,
    status: dict[str, Any],
    events: list[Event],
) -> None:
    if status != snapshot.status:
        api.apply_status(ref, status)
    for event in merged_events(events):
        try:
            api.event(ref, event.type, event.reason, event.message)
        except ApiException as err:  # an event lost is not worth a retry of the reconcile
            log.warning("could not post event %s for %s: %s", event.reason, ref.name, err.reason)
