"""TF_CONFIG: the cluster of chief, workers and parameter servers, and this pod's task."""

from __future__ import annotations

import json

from ...api.trainingjob import TrainingJobSpec
from ..names import ObjectRef
from .names import CLUSTER_ROLES, pod_address, replicas

TASK_INDEX_ENV = "MODELSHIP_TASK_INDEX"
# A JSON string no address or role can contain (DNS names have no `_`), replaced after encoding.
_INDEX_PLACEHOLDER = json.dumps("__index__")


def cluster(ref: ObjectRef, spec: TrainingJobSpec) -> dict[str, list[str]]:
    return {
        role: [pod_address(ref, role, index) for index in range(replicas(spec, role))]
        for role in CLUSTER_ROLES
        if replicas(spec, role) > 0
    }


def tf_config(ref: ObjectRef, spec: TrainingJobSpec, role: str) -> str:
    """One pod template serves every index of a role, so the index is `$(MODELSHIP_TASK_INDEX)`,
    which Kubernetes expands from the env var before it (the pod's completion index)."""
    task = {"type": role, "index": json.loads(_INDEX_PLACEHOLDER)}
    text = json.dumps({"cluster": cluster(ref, spec), "task": task})
    return text.replace(_INDEX_PLACEHOLDER, f"$({TASK_INDEX_ENV})")
