"""The full desired set of children for one TrainingJob."""

from __future__ import annotations

from typing import Any

from ...api.trainingjob import TrainingJobSpec
from ..names import ObjectRef
from .jobs import build_role_job
from .names import roles
from .service import build_service


def desired_children(ref: ObjectRef, spec: TrainingJobSpec) -> list[dict[str, Any]]:
    """The Service first (pods resolve their peers through it), then one Job per role with pods,
    in TF_CONFIG order."""
    return [build_service(ref), *(build_role_job(ref, spec, role) for role in roles(spec))]
