"""Names, labels, ports and roles shared by every child of a TrainingJob."""

from __future__ import annotations

from typing import Any

from ...api.trainingjob import ReplicaSpec, TrainingJobSpec
from ..names import MANAGED_BY, ObjectRef, owner_reference

OWNER_LABEL = "modelship.dev/trainingjob"
ROLE_LABEL = "modelship.dev/replica-type"
TF_PORT = 2222
METRICS_PORT = 9400
CONTAINER = "tensorflow"
# TF_CONFIG's order of roles; the evaluator is not part of the cluster.
ROLES = ("chief", "worker", "ps", "evaluator")
CLUSTER_ROLES = ("chief", "worker", "ps")


def replica_spec(spec: TrainingJobSpec, role: str) -> ReplicaSpec | None:
    found: ReplicaSpec | None = getattr(spec.replica_specs, role)
    return found


def replicas(spec: TrainingJobSpec, role: str) -> int:
    found = replica_spec(spec, role)
    return found.replicas if found is not None else 0


def roles(spec: TrainingJobSpec) -> list[str]:
    """The roles that have pods, in TF_CONFIG order."""
    return [role for role in ROLES if replicas(spec, role) > 0]


def exporter_role(spec: TrainingJobSpec) -> str:
    """The role whose task 0 reports progress and exports the model."""
    return "chief" if replicas(spec, "chief") > 0 else "worker"


def service_name(ref: ObjectRef) -> str:
    """The headless Service, and the pods' subdomain. Not the TrainingJob's own name: a
    ModelDeployment of the same name (train "mnist", serve "mnist") owns a Service by that name."""
    return f"{ref.name}-tf"


def job_name(ref: ObjectRef, role: str) -> str:
    return f"{ref.name}-{role}"


def pod_address(ref: ObjectRef, role: str, index: int) -> str:
    """host:port of one task: an Indexed Job names its pod's host `<job>-<index>`."""
    host = f"{job_name(ref, role)}-{index}.{service_name(ref)}.{ref.namespace}.svc"
    return f"{host}:{TF_PORT}"


def selector_labels(ref: ObjectRef) -> dict[str, str]:
    return {OWNER_LABEL: ref.name}


def common_labels(ref: ObjectRef) -> dict[str, str]:
    return {
        **selector_labels(ref),
        "app.kubernetes.io/name": "modelship-training",
        "app.kubernetes.io/instance": ref.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def pod_labels(ref: ObjectRef, role: str) -> dict[str, str]:
    return {**common_labels(ref), ROLE_LABEL: role}


def child_metadata(ref: ObjectRef, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": common_labels(ref),
        "ownerReferences": [owner_reference(ref)],
    }
