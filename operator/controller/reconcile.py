"""One reconcile of one ModelDeployment: plan from a snapshot, then the writes the plan needs.
Runs in a worker thread (the API client blocks); reads nothing from the API itself."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..api.modeldeployment import ModelDeploymentSpec
from ..resources.kinds import BY_KIND
from ..resources.names import ModelDeploymentRef, model_name, monitoring_port
from ..resources.scaledobject import Blocker, MetricsSource, is_keda
from .plan import CREATED, INVALID_SPEC, ChildPlan, Event, Snapshot, plan_children
from .scaling import SCALING_ACTIVE, effective_replicas
from .status import Verdict, build_status, invalid_spec_status, judge
from .trained_model import Waiting, resolve
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


FORBIDDEN = "Forbidden"
# A 500 the apiserver gives for the object itself, not for its own health: server-side apply of
# a field the schema does not declare. Retrying the same object fails the same way.
_OBJECT_ERRORS_500 = ("field not declared in schema", "failed to create typed patch object")


def _refused(err: ApiException) -> bool:
    """The apiserver judged the object itself invalid: the same spec will fail the same way."""
    if err.status in (400, 422):
        return True
    return err.status == 500 and any(text in _reason_of(err) for text in _OBJECT_ERRORS_500)


def _forbidden(err: ApiException) -> bool:
    """RBAC or a ResourceQuota said no: the spec is fine, the cluster may change, so retry."""
    return bool(err.status == 403)


def _kind_not_installed(obj: dict[str, Any], err: ApiException) -> Blocker | None:
    """A child whose CRD comes from another project, refused because the CRD is missing (the
    apiserver does not know the resource at all: 404 without an object name)."""
    child = BY_KIND.get(obj["kind"])
    if child is None or child.provided_by is None or err.status != 404:
        return None
    try:
        details = json.loads(err.body or "{}").get("details") or {}
    except ValueError:
        details = {}
    if details.get("name"):
        return None  # a named object is missing (the namespace, say): not the API
    return Blocker(
        f"{child.provided_by}NotInstalled",
        f"cannot write {child.kind} {obj['metadata']['name']}: the cluster does not serve "
        f"{child.crd_name} ({child.api_version}); install {child.provided_by}, or set "
        "spec.autoscaling.mode to operator. Retried at every resync.",
    )


def _reason_of(err: ApiException) -> str:
    try:
        message = json.loads(err.body or "{}").get("message")
    except ValueError:
        message = None
    return str(message or err.reason or err)


@dataclass
class Written:
    """What performing a child plan did."""

    writes: int = 0
    events: list[Event] = field(default_factory=list)
    refused: str | None = None  # the apiserver's refusal of a child, naming it
    forbidden: ApiException | None = None  # a 403: reported, then retried with backoff
    forbidden_message: str = ""
    blocker: Blocker | None = None  # why a keda-mode object has no ScaledObject
    applied_deployment: bool = False


class CreateLimits:
    """At most `n` creates of one child kind in flight at once, across all reconciles. Creating
    a ClusterIP Service allocates its IP, and more Services at once did not make more Services
    per second in the operator-scale bench: with 16 in flight each took about 1.1 s (about 13
    a second), with 2 about 0.13 s (BENCHMARKS.md). Workers wait here instead of inside the
    apiserver, and are the NEW lane's only: status reconciles do not wait at all.
    """

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self._lanes = {
            kind: threading.BoundedSemaphore(n) for kind, n in (limits or {}).items() if n > 0
        }

    @contextmanager
    def creating(self, kind: str) -> Iterator[None]:
        lane = self._lanes.get(kind)
        if lane is None:
            yield
            return
        with lane:
            yield


NO_LIMITS = CreateLimits()


def write_children(plan: ChildPlan, api: Writer, limits: CreateLimits = NO_LIMITS) -> Written:
    """Apply, then delete (only when nothing was refused: a refused spec keeps what runs)."""
    done = Written(refused=plan.refused, blocker=plan.scaling_blocker)
    for obj, event in plan.apply:
        try:
            if event.reason == CREATED:
                with limits.creating(obj["kind"]):
                    api.apply(obj)
            else:
                api.apply(obj)
        except ApiException as err:
            missing = _kind_not_installed(obj, err)
            if missing is not None:
                done.blocker = missing
                continue
            if _forbidden(err):
                done.forbidden = err
                done.forbidden_message = (
                    f"cannot write {obj['kind']} {obj['metadata']['name']}: {_reason_of(err)}"
                    " (the operator's RBAC or a ResourceQuota; retrying with backoff)"
                )
                break
            if not _refused(err):
                raise
            done.refused = f"{obj['kind']} {obj['metadata']['name']}: {_reason_of(err)}"
            done.events.append(Event("Warning", INVALID_SPEC, done.refused))
            break
        done.writes += 1
        done.events.append(event)
        done.applied_deployment |= obj["kind"] == "Deployment"
    if done.refused is None and done.forbidden is None:
        for obj, event in plan.delete:
            api.delete(obj)
            done.writes += 1
            done.events.append(event)
    return done


class FirstStatus:
    """Holds back the first status of a new object for a short grace after its children are
    created, so a quick rollout costs one status write (Ready) instead of two (RollingOut, then
    Ready): in a burst of creations every write competes with the next object's creates. Only
    an object with no conditions yet waits (a changed spec reports RollingOut at once, so an old
    Ready=True never outlives it), only while nothing is wrong, and never past the grace: the
    controller looks again when it ends (`due_in`). Reconciles of different objects share one
    instance from several threads; each touches only its own uid's entry."""

    def __init__(self, grace: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        # (namespace, name, uid) → when the first status must be written
        self._due: dict[tuple[str, str, str], float] = {}

    def can_wait(self, snapshot: Snapshot, done: Written, verdict: Verdict) -> bool:
        ref = snapshot.ref
        uid = (ref.namespace, ref.name, ref.uid)
        quiet = (
            not snapshot.status.get("conditions")  # never reported (the CRD defaults the rest)
            and not verdict.ready
            and not verdict.stalled
            and verdict.reason in ("Creating", "RollingOut")
            and done.refused is None
            and done.forbidden is None
            and done.blocker is None
        )
        now = self._clock()
        if quiet and done.applied_deployment and "Deployment" not in snapshot.children:
            self._due[uid] = now + self.grace  # the children were created just now
        due = self._due.get(uid)
        if not quiet or due is None or now >= due:
            self._due.pop(uid, None)
            return False
        return True

    def due_in(self, ref: ModelDeploymentRef) -> float | None:
        """Seconds until a held-back first status must be written; None if none is held."""
        due = self._due.get((ref.namespace, ref.name, ref.uid))
        return None if due is None else max(0.0, due - self._clock())

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone."""
        for held in [held for held in self._due if held[:2] == (namespace, name)]:
            self._due.pop(held, None)


def reconcile(
    snapshot: Snapshot,
    api: Writer,
    now: Callable[[], str] = utc_now,
    prober: VersionProber | None = None,
    metrics: MetricsSource | None = None,
    first_status: FirstStatus | None = None,
    limits: CreateLimits = NO_LIMITS,
) -> int:
    """Returns the number of writes made. Transient API errors propagate (the queue retries
    with backoff); refusals (400, 422, a 500 about the object) become Stalled=True with reason
    InvalidSpec for this generation and are not retried until the spec changes; a 403 becomes
    Stalled=True with reason Forbidden and the apiserver's message, then propagates for a retry.
    `metrics` is the Prometheus a keda-mode ScaledObject reads; a child whose
    CRD is not installed (KEDA's) sets ScalingActive=False and the others go on.
    `first_status` (the controller's) lets a new object's first status wait briefly; `limits`
    bounds the creates of a kind in flight at once."""
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
    source = resolve(spec, snapshot.training_job, deployment)
    if isinstance(source, Waiting):
        return _wait_for_model(snapshot, spec, source, api, now, replicas)
    spec = source.spec
    plan = plan_children(snapshot, spec, replicas, metrics, model_uri=source.model_uri)
    done = write_children(plan, api, limits)
    writes += done.writes
    events: list[Event] = list(done.events)
    apply_error = done.refused

    verdict = judge(spec, deployment, snapshot.pods, apply_error, replicas)
    if done.forbidden is not None:
        verdict = Verdict(False, FORBIDDEN, done.forbidden_message, stalled=True)
    elif done.applied_deployment:
        # The Deployment we just wrote has not been observed yet; Ready would be a lie.
        verdict = Verdict(
            False, "RollingOut", f"rolling out generation {ref.generation}", stalled=False
        )
    version = snapshot.status.get("modelVersion")
    if verdict.ready and prober is not None:
        key = (ref.namespace, ref.name)
        version = prober.served_version(
            key, model_name(ref, spec), snapshot.pods, port=monitoring_port(spec)
        )
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
        scaling_blocker=done.blocker,
    )
    events += _scale_ignored_events(snapshot, spec, replicas)
    if first_status is not None and first_status.can_wait(snapshot, done, verdict):
        status = snapshot.status  # written by a later reconcile; see FirstStatus
    if status != snapshot.status:
        events += _transition_events(snapshot, verdict) + _blocker_events(snapshot, done.blocker)
        api.apply_status(ref, status)
        writes += 1
    for event in merged_events(events):
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
    if done.forbidden is not None:
        raise done.forbidden  # reported above; the queue retries it with backoff
    return writes


def _wait_for_model(
    snapshot: Snapshot,
    spec: ModelDeploymentSpec,
    waiting: Waiting,
    api: Writer,
    now: Callable[[], str],
    replicas: int,
) -> int:
    """spec.trainingJobName names a job with nothing exported yet: say so, write no children."""
    verdict = Verdict(False, waiting.reason, waiting.message, stalled=waiting.stalled)
    status = build_status(
        snapshot.ref, spec, verdict, None, snapshot.status, now(), replicas=replicas
    )
    if status == snapshot.status:
        return 0
    api.apply_status(snapshot.ref, status)
    writes = 1
    for event in _transition_events(snapshot, verdict):
        api.event(snapshot.ref, event.type, event.reason, event.message)
        writes += 1
    return writes


def _scale_ignored_events(
    snapshot: Snapshot, spec: ModelDeploymentSpec, replicas: int
) -> list[Event]:
    """A `kubectl scale` while the autoscaler owns the count: say it changed nothing."""
    if not snapshot.scale_ignored or spec.replicas == replicas or is_keda(spec):
        return []
    message = (
        f"spec.replicas={spec.replicas} is ignored while spec.autoscaling is set; the "
        f"autoscaler keeps {replicas} (set autoscaling.minReplicas/maxReplicas instead)"
    )
    return [Event("Warning", "ScaleIgnored", message)]


def _blocker_events(snapshot: Snapshot, blocker: Blocker | None) -> list[Event]:
    """A warning when a keda-mode object first cannot get its ScaledObject, or for a new
    reason."""
    if blocker is None:
        return []
    before = next(
        (c for c in snapshot.status.get("conditions", []) if c.get("type") == SCALING_ACTIVE),
        None,
    )
    if before is not None and before.get("reason") == blocker.reason:
        return []
    return [Event("Warning", blocker.reason, blocker.message)]


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


def merged_events(events: list[Event]) -> list[Event]:
    """One event per (type, reason): "created Deployment x; created Service x" is one write."""
    merged: dict[tuple[str, str], list[str]] = {}
    for event in events:
        merged.setdefault((event.type, event.reason), []).append(event.message)
    return [Event(t, r, "; ".join(dict.fromkeys(messages))) for (t, r), messages in merged.items()]
