"""The full desired set of children for one ModelDeployment."""

from __future__ import annotations

from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from .batching import build_batching_config
from .deployment import build_deployment
from .kinds import CHILDREN
from .names import ModelDeploymentRef
from .networkpolicy import build_network_policy
from .scaledobject import MetricsSource, build_scaled_object, is_keda, keda_blocker
from .service import build_disruption_budget, build_service, wants_disruption_budget

GENERATION_ANNOTATION = "modelship.dev/generation"
# Every kind a ModelDeployment may own; ones not desired now are deleted if they exist.
CHILD_KINDS = tuple(child.kind for child in CHILDREN)


def desired_children(
    ref: ModelDeploymentRef,
    spec: ModelDeploymentSpec,
    replicas: int | None = None,
    metrics: MetricsSource | None = None,
) -> dict[str, dict[str, Any]]:
    """Kind → object. The Deployment carries the owner's generation, so a spec change is never
    mistaken for a Deployment that already matches: fields dropped from the spec must be dropped
    from it too, and only a fresh apply does that. The other children do not depend on fields a
    spec can drop, so a scale does not rewrite them (the ScaledObject carries a digest of its own
    spec instead). `replicas` overrides spec.replicas (the autoscaler's count); `metrics` is
    where a keda-mode ScaledObject's trigger reads (none: no ScaledObject can be written)."""
    children = {
        "Deployment": build_deployment(ref, spec, replicas),
        "Service": build_service(ref),
    }
    if wants_disruption_budget(spec):
        children["PodDisruptionBudget"] = build_disruption_budget(ref)
    if spec.batching is not None and spec.batching.enabled:
        children["ConfigMap"] = build_batching_config(ref, spec.batching)
    if spec.network_policy is not None:
        children["NetworkPolicy"] = build_network_policy(ref, spec, spec.network_policy)
    if is_keda(spec) and metrics is not None and keda_blocker(spec, metrics) is None:
        children["ScaledObject"] = build_scaled_object(ref, spec, metrics)
    children["Deployment"]["metadata"]["annotations"] = {GENERATION_ANNOTATION: str(ref.generation)}
    return children
