"""One reconcile of one ModelDeployment: plan from a snapshot, then the writes the plan needs.
Runs in a worker thread (the API client blocks); reads nothing from the API itself."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..api.modeldeployment import ModelDeploymentSpec
from ..resources.names import ModelDeploymentRef, model_name
from .plan import INVALID_SPEC, Event, Snapshot, plan_children
from .scaling import effective_replicas
from .status import Verdict, build_status, invalid_spec_status, judge
from .version import VersionProber

log = logging.getLogger(__name__)


class Writer(Protocol):
    """The write calls a reconcile may make (operator/kube.py's KubeApi)."""

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    def delete(self, obj: dict[str, Any]) -> None: ...
    def apply_status(self, ref: ModelDeploymentRef, status: dict[str, Any]) -> None: ...
    def event(self, ref: ModelDeploymentRef, type_: str, reason: str, message: str) -> None: ...


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refused(err: ApiException) -> bool:
    """The apiserver judged the object itself invalid: the same spec will fail the same way."""
    return err.status in (400, 403, 422)


def _reason_of(err: ApiException) -> str:
    try:
        message = json.loads(err.body or "{}").get("message")
    except ValueError:
        message = None
    return str(message or err.reason or err)


def reconcile(
    snapshot: Snapshot,
    api: Writer,
    now: Callable[[], str] = utc_now,
    prober: VersionProber | None = None,
) -> int:
    """Returns the number of writes made. Transient API errors propagate (the queue retries
    with backoff); refusals become Stalled=True for this generation and are not retried until
    the spec changes."""
    ref = snapshot.ref
    writes = 0
    try:
        spec = ModelDeploymentSpec.model_validate(snapshot.body.get("spec") or {})
    except ValidationError as err:
        # The CRD schema should have refused it; an older CRD or a hand-edited one may not.
        status = invalid_spec_status(ref, f"spec does not validate: {err}", snapshot.status, now())
        if status != snapshot.status:
            api.apply_status(ref, status)
            writes += 1
        return writes
    deployment = snapshot.children.get("Deployment")
    replicas = effective_replicas(spec, snapshot.status, deployment, snapshot.scale)
    plan = plan_children(snapshot, spec, replicas)
    apply_error = plan.refused
    applied_deployment = False
    events: list[Event] = []
    for obj, event in plan.apply:
        try:
            api.apply(obj)
        except ApiException as err:
            if not _refused(err):
                raise
            apply_error = f"{obj['kind']} {obj['metadata']['name']}: {_reason_of(err)}"
            events.append(Event("Warning", INVALID_SPEC, apply_error))
            break
        writes += 1
        events.append(event)
        applied_deployment |= obj["kind"] == "Deployment"
    if apply_error is None:
        for obj, event in plan.delete:
            api.delete(obj)
            writes += 1
            events.append(event)

    verdict = judge(spec, deployment, snapshot.pods, apply_error, replicas)
    if applied_deployment:
        # The Deployment we just wrote has not been observed yet; Ready would be a lie.
        verdict = Verdict(
            False, "RollingOut", f"rolling out generation {ref.generation}", stalled=False
        )
    version = snapshot.status.get("modelVersion")
    if verdict.ready and prober is not None:
        key = (ref.namespace, ref.name)
        version = prober.served_version(key, model_name(ref, spec), snapshot.pods)
    status = build_status(
        ref,
        spec,
        verdict,
        deployment,
        snapshot.status,
        now(),
        version,
        replicas=replicas,
        scale=snapshot.scale,
    )
    events += _scale_ignored_events(snapshot, spec, replicas)
    if status != snapshot.status:
        events += _transition_events(snapshot, verdict)
        api.apply_status(ref, status)
        writes += 1
    for event in _merged(events):
        try:
            api.event(ref, event.type, event.reason, event.message)
            writes += 1
        except ApiException as err:  # an event lost is not worth a retry of the reconcile
            log.warning(
                "could not post event %s for %s/%s: %s",
                event.reason,
                ref.namespace,
                ref.name,
                err.reason,
            )
    return writes


def _scale_ignored_events(
    snapshot: Snapshot, spec: ModelDeploymentSpec, replicas: int
) -> list[Event]:
    """A `kubectl scale` while the autoscaler owns the count: say it changed nothing."""
    if not snapshot.scale_ignored or spec.replicas == replicas:
        return []
    message = (
        f"spec.replicas={spec.replicas} is ignored while spec.autoscaling is set; the "
        f"autoscaler keeps {replicas} (set autoscaling.minReplicas/maxReplicas instead)"
    )
    return [Event("Warning", "ScaleIgnored", message)]


def _transition_events(snapshot: Snapshot, verdict: Verdict) -> list[Event]:
    """An event when Ready flips, or the reason for not being Ready changes to a failure."""
    before = next(
        (c for c in snapshot.status.get("conditions", []) if c.get("type") == "Ready"), None
    )
    if verdict.ready:
        if before is None or before.get("status") != "True":
            return [Event("Normal", "Ready", verdict.message)]
        return []
    failing = verdict.stalled or verdict.reason not in ("Creating", "RollingOut")
    if failing and (before is None or before.get("reason") != verdict.reason):
        return [Event("Warning", verdict.reason, verdict.message)]
    return []


def _merged(events: list[Event]) -> list[Event]:
    """One event per (type, reason): "created Deployment x; created Service x" is one write."""
    merged: dict[tuple[str, str], list[str]] = {}
    for event in events:
        merged.setdefault((event.type, event.reason), []).append(event.message)
    return [Event(t, r, "; ".join(dict.fromkeys(messages))) for (t, r), messages in merged.items()]
