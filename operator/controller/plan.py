"""Decide, from a snapshot of one ModelDeployment and its children, which writes are needed.
Pure: the executor performs the plan, and tests check plans without a cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from ..resources.children import (
    CHILD_KINDS,
    GENERATION_ANNOTATION,
    desired_children,
)
from ..resources.names import ModelDeploymentRef
from ..resources.scaledobject import Blocker, MetricsSource, is_keda, keda_blocker
from .compare import contains
from .scaling import ScaleState
from .trained_model import mark_model_uri

INVALID_SPEC = "InvalidSpec"
CREATED = "Created"  # the event reason of a child the apply creates


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Snapshot:
    """What the operator's caches hold for one ModelDeployment."""

    body: dict[str, Any]
    children: dict[str, dict[str, Any]]  # kind → live object
    pods: list[dict[str, Any]]
    # The autoscaler's latest decision for this object, when it has one.
    scale: ScaleState | None = None
    # spec.replicas changed (kubectl scale) while autoscaling owns the replica count.
    scale_ignored: bool = False
    # The TrainingJob named by spec.trainingJobName, when the cache has it.
    training_job: dict[str, Any] | None = None

    @property
    def ref(self) -> ModelDeploymentRef:
        return ModelDeploymentRef.from_body(self.body)

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.body.get("status") or {}
        return status


@dataclass
class ChildPlan:
    """Objects to apply and to delete, each with the event that tells the user about it."""

    apply: list[tuple[dict[str, Any], Event]] = field(default_factory=list)
    delete: list[tuple[dict[str, Any], Event]] = field(default_factory=list)
    # Set when the apiserver already refused this generation: why, carried into the status.
    refused: str | None = None
    # Why a keda-mode object gets no ScaledObject (ScalingActive=False), if it does not.
    scaling_blocker: Blocker | None = None


def refused_before(snapshot: Snapshot) -> str | None:
    """The apiserver refused our children for this very generation: retrying cannot help."""
    for cond in snapshot.status.get("conditions", []):
        if (
            cond.get("type") == "Stalled"
            and cond.get("status") == "True"
            and cond.get("reason") == INVALID_SPEC
            and cond.get("observedGeneration") == snapshot.ref.generation
        ):
            return str(cond.get("message", ""))
    return None


def plan_children(
    snapshot: Snapshot,
    spec: ModelDeploymentSpec,
    replicas: int | None = None,
    metrics: MetricsSource | None = None,
    model_uri: str | None = None,
) -> ChildPlan:
    """`replicas` is the autoscaler's count when autoscaling is on (default: spec.replicas);
    `metrics` is the Prometheus a keda-mode ScaledObject reads; `model_uri` the TrainingJob
    export served (spec.trainingJobName)."""
    refused = refused_before(snapshot)
    if refused is not None:
        return ChildPlan(refused=refused)
    plan = ChildPlan(scaling_blocker=keda_blocker(spec, metrics))
    ref = snapshot.ref
    desired = desired_children(ref, spec, replicas, metrics)
    if model_uri is not None:
        mark_model_uri(desired["Deployment"], model_uri)
    scale_message = snapshot.scale.message if snapshot.scale is not None else None
    for kind, want in desired.items():
        live = snapshot.children.get(kind)
        if live is not None and contains(live, want):
            continue
        plan.apply.append((want, _apply_event(kind, want, live, ref, scale_message)))
    for kind in CHILD_KINDS:
        live = snapshot.children.get(kind) or _unwatched_leftover(snapshot, spec, kind)
        if kind not in desired and live is not None:
            event = Event("Normal", "Deleted", f"deleted {kind} {live['metadata']['name']}")
            plan.delete.append((live, event))
    return plan


def _unwatched_leftover(
    snapshot: Snapshot, spec: ModelDeploymentSpec, kind: str
) -> dict[str, Any] | None:
    """The ScaledObject of an object leaving keda mode, by name, when the cache has none: the
    watch on a CRD installed after the operator started may not be serving yet, and a leftover
    ScaledObject would keep scaling the object. Deleted without a uid precondition; a 404 is
    fine."""
    was_keda = (snapshot.status.get("autoscaling") or {}).get("mode") == "keda"
    if kind != "ScaledObject" or not was_keda or is_keda(spec):
        return None
    ref = snapshot.ref
    return {"kind": kind, "metadata": {"name": ref.name, "namespace": ref.namespace}}


def _apply_event(
    kind: str,
    want: dict[str, Any],
    live: dict[str, Any] | None,
    ref: ModelDeploymentRef,
    scale_message: str | None = None,
) -> Event:
    name = want["metadata"]["name"]
    if live is None:
        return Event("Normal", CREATED, f"created {kind} {name}")
    if kind == "Deployment" and scale_message:
        before, after = live.get("spec", {}).get("replicas"), want["spec"]["replicas"]
        if before != after:
            # The autoscaler's own explanation, with its numbers.
            return Event("Normal", "Scaled", f"{scale_message} (Deployment {name})")
    live_generation = live.get("metadata", {}).get("annotations", {}).get(GENERATION_ANNOTATION)
    if live_generation == str(ref.generation):
        # Written for this very spec and changed since: someone edited our object.
        return Event("Normal", "DriftCorrected", f"restored {kind} {name} to the desired state")
    if kind == "Deployment":
        before, after = live.get("spec", {}).get("replicas"), want["spec"]["replicas"]
        if before != after:
            return Event("Normal", "Scaled", f"scaled Deployment {name} from {before} to {after}")
    return Event("Normal", "Updated", f"updated {kind} {name} to generation {ref.generation}")
