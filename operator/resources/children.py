"""The full desired set of children for one ModelDeployment."""

from __future__ import annotations

from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from .batching import build_batching_config
from .deployment import build_deployment
from .names import ModelDeploymentRef
from .service import build_disruption_budget, build_service, wants_disruption_budget

GENERATION_ANNOTATION = "modelship.dev/generation"
# Every kind a ModelDeployment may own; ones not desired now are deleted if they exist.
CHILD_KINDS = ("Deployment", "Service", "PodDisruptionBudget", "ConfigMap")


def desired_children(
    ref: ModelDeploymentRef, spec: ModelDeploymentSpec, replicas: int | None = None
) -> dict[str, dict[str, Any]]:
    """Kind → object. The Deployment carries the owner's generation, so a spec change is never
    mistaken for a Deployment that already matches: fields dropped from the spec must be dropped
    from it too, and only a fresh apply does that. The other children do not depend on fields a
    spec can drop, so a scale does not rewrite them. `replicas` overrides spec.replicas (the
    autoscaler's count)."""
    children = {
        "Deployment": build_deployment(ref, spec, replicas),
        "Service": build_service(ref),
    }
    if wants_disruption_budget(spec):
        children["PodDisruptionBudget"] = build_disruption_budget(ref)
    if spec.batching is not None and spec.batching.enabled:
        children["ConfigMap"] = build_batching_config(ref, spec.batching)
    children["Deployment"]["metadata"]["annotations"] = {GENERATION_ANNOTATION: str(ref.generation)}
    return children
