"""What the autoscaler's latest decision means for one reconcile: the replica count the
Deployment gets, `status.autoscaling`, and the ScalingActive condition. Pure: the autoscaler
loop (autoscaler.py) produces `ScaleState`s, the reconcile reads them through its snapshot.
In mode keda the operator decides nothing: KEDA's HPA writes spec.replicas through the scale
subresource, and the Deployment follows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from ..resources.scaledobject import Blocker, is_keda

SCALING_ACTIVE = "ScalingActive"


@dataclass(frozen=True)
class ScaleState:
    """The autoscaler's view of one ModelDeployment after its latest tick."""

    desired: int
    metric: str
    target: int
    value: float | None = None  # per pod, or whole for p99LatencyMs; None before any reading
    reason: str = "Observing"
    message: str = ""
    scaled_at: str | None = None  # RFC 3339 time of the last change of `desired`
    # Why metrics cannot be read now (replicas are held meanwhile); None when they can.
    problem_reason: str | None = None
    problem: str | None = None


def _clamp(value: int, spec: ModelDeploymentSpec) -> int:
    assert spec.autoscaling is not None
    return max(spec.autoscaling.min_replicas, min(spec.autoscaling.max_replicas, value))


def effective_replicas(
    spec: ModelDeploymentSpec,
    status: dict[str, Any],
    deployment: dict[str, Any] | None,
    state: ScaleState | None,
) -> int:
    """spec.replicas without autoscaling, and in mode keda (KEDA's HPA writes it). In mode
    operator: the autoscaler's latest count, else the one it wrote before a restart (status),
    else what the Deployment runs, else minReplicas. With autoscaling always within
    [minReplicas, maxReplicas], so an edited bound acts at once."""
    if spec.autoscaling is None:
        return spec.replicas
    if is_keda(spec):
        return _clamp(spec.replicas, spec)
    if state is not None:
        return _clamp(state.desired, spec)
    written = (status.get("autoscaling") or {}).get("desiredReplicas")
    if isinstance(written, int):
        return _clamp(written, spec)
    running = ((deployment or {}).get("spec") or {}).get("replicas")
    if isinstance(running, int):
        return _clamp(running, spec)
    return spec.autoscaling.min_replicas


def autoscaling_status(
    spec: ModelDeploymentSpec,
    replicas: int,
    state: ScaleState | None,
    previous: dict[str, Any],
    *,
    name: str = "",
    blocker: Blocker | None = None,
) -> dict[str, Any] | None:
    """`status.autoscaling`; after a restart (no state yet) the last one written is kept.
    `name` and `blocker` are for mode keda: the ScaledObject's name, and why there is none."""
    if spec.autoscaling is None:
        return None
    if is_keda(spec):
        message = (
            f"KEDA scales spec.replicas through ScaledObject {name} (HPA keda-hpa-{name}); "
            "the Deployment follows it"
            if blocker is None
            else f"replicas stay at spec.replicas: {blocker.message}"
        )
        return {
            "mode": "keda",
            "metric": spec.autoscaling.metric,
            "target": spec.autoscaling.target,
            "desiredReplicas": replicas,
            "reason": "KEDA" if blocker is None else blocker.reason,
            "message": message,
        }
    before: dict[str, Any] = dict(previous.get("autoscaling") or {})
    if state is None:
        return {
            **before,
            "mode": "operator",
            "metric": spec.autoscaling.metric,
            "target": spec.autoscaling.target,
            "desiredReplicas": replicas,
        }
    status: dict[str, Any] = {
        "mode": "operator",
        "metric": state.metric,
        "target": state.target,
        "desiredReplicas": replicas,
        "reason": state.problem_reason or state.reason,
        "message": state.message,
    }
    if state.value is not None:
        status["currentValue"] = round(state.value, 3)
    scaled_at = state.scaled_at or before.get("lastScaleTime")
    if scaled_at:
        status["lastScaleTime"] = scaled_at
    return status


def scaling_condition(
    spec: ModelDeploymentSpec,
    state: ScaleState | None,
    previous: dict[str, Any],
    blocker: Blocker | None = None,
) -> tuple[str, str, str] | None:
    """(status, reason, message) of ScalingActive, None without autoscaling. Prometheus trouble
    is reported here and never as Stalled: the spec is fine, the autoscaler holds replicas and
    recovers by itself. In mode keda KEDA reports on its own ScaledObject, so the condition is
    there only while the operator cannot hand scaling to KEDA (`blocker`)."""
    if spec.autoscaling is None:
        return None
    if is_keda(spec):
        return None if blocker is None else ("False", blocker.reason, blocker.message)
    if state is None:
        kept = next(
            (c for c in previous.get("conditions", []) if c.get("type") == SCALING_ACTIVE), None
        )
        if kept is not None:
            return kept["status"], kept.get("reason", ""), kept.get("message", "")
        return "Unknown", "Waiting", "waiting for the autoscaler's first reading"
    if state.problem is not None:
        return "False", state.problem_reason or "MetricUnavailable", state.problem
    return (
        "True",
        "ValidMetric",
        f"reading {state.metric} from Prometheus; replicas held at target {state.target}",
    )
