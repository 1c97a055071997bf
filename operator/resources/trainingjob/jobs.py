"""One Indexed batch/v1 Job per role: the Job controller already gives backoff, deadlines,
suspend (Kueue), podFailurePolicy and successPolicy, so none of them is re-implemented here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...api.trainingjob import ReplicaSpec, TrainingJobSpec
from .. import scheduling
from ..children import GENERATION_ANNOTATION
from ..deployment import CONTAINER_SECURITY, POD_SECURITY
from ..names import ObjectRef
from .names import (
    CONTAINER,
    METRICS_PORT,
    TF_PORT,
    child_metadata,
    job_name,
    pod_labels,
    replica_spec,
    replicas,
    service_name,
)
from .storage import checkpoint_storage, output_storage
from .tfconfig import TASK_INDEX_ENV, tf_config

# A digest of the Job spec fields Kubernetes refuses to change once the Job exists.
SPEC_HASH_ANNOTATION = "modelship.dev/job-spec-hash"
# The Job spec fields that may change in place; a change to any other means a new Job.
_MUTABLE_JOB_FIELDS = frozenset({"suspend", "activeDeadlineSeconds", "backoffLimit"})
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
# The user's training code writes where it likes (dataset caches, ~/.keras), so unlike the
# model server its root filesystem stays writable; "restricted" does not require it read-only.
TRAINING_SECURITY = {**CONTAINER_SECURITY, "readOnlyRootFilesystem": False}
# Exit codes 1-127 are the program's own verdict (bad code or data): retrying cannot help.
# 128 and above are signals and the trainer's "peer lost" (138): those count against backoff.
_PERMANENT_EXIT_CODES = list(range(1, 128))


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _env(
    ref: ObjectRef, spec: TrainingJobSpec, role: str, own: ReplicaSpec
) -> list[dict[str, Any]]:
    """In this order: `$(VAR)` expands only variables defined before it."""
    return [
        _field_env(TASK_INDEX_ENV, COMPLETION_INDEX),
        {"name": "TF_CONFIG", "value": tf_config(ref, spec, role)},
        _field_env("MODELSHIP_POD_IP", "status.podIP"),
        {"name": "MODELSHIP_METRICS_PORT", "value": str(METRICS_PORT)},
        *output_storage(spec.output).env,
        *checkpoint_storage(spec.checkpoints).env,
        *(e.model_dump(by_alias=True, exclude_none=True) for e in own.env or []),
    ]


def _container(
    ref: ObjectRef, spec: TrainingJobSpec, role: str, own: ReplicaSpec
) -> dict[str, Any]:
    output, checkpoints = output_storage(spec.output), checkpoint_storage(spec.checkpoints)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": own.image,
        "ports": [
            {"name": "tf", "containerPort": TF_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": _env(ref, spec, role, own),
        "volumeMounts": [*output.mounts, *checkpoints.mounts],
        # A failed task with no termination message still tells why, from its log's tail.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": TRAINING_SECURITY,
    }
    if own.command:
        container["command"] = list(own.command)
    if own.args:
        container["args"] = list(own.args)
    if output.env_from:
        container["envFrom"] = output.env_from
    base = own.resources.model_dump(by_alias=True, exclude_none=True) if own.resources else None
    resources = scheduling.resources(base, own.gpu)
    if resources:
        container["resources"] = resources
    return container


def _pod_spec(ref: ObjectRef, spec: TrainingJobSpec, role: str, own: ReplicaSpec) -> dict[str, Any]:
    return {
        # With the Indexed Job's hostname `<job>-<index>` this is the pod's DNS name.
        "subdomain": service_name(ref),
        "restartPolicy": "OnFailure" if own.restart_policy == "OnFailure" else "Never",
        "securityContext": POD_SECURITY,
        # Training pods get no Kubernetes API rights.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [_container(ref, spec, role, own)],
        "volumes": [
            *output_storage(spec.output).volumes,
            *checkpoint_storage(spec.checkpoints).volumes,
        ],
        **scheduling.placement(own, own.gpu),
    }


def _pod_failure_policy() -> dict[str, Any]:
    """restartPolicy ExitCode. A pod evicted or preempted is not the program's failure, whatever
    its exit code, so that rule comes first (the first matching rule decides)."""
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": _PERMANENT_EXIT_CODES,
                },
            },
        ]
    }


def build_role_job(ref: ObjectRef, spec: TrainingJobSpec, role: str) -> dict[str, Any]:
    """The Job of one role with replicas > 0 (see names.roles)."""
    own = replica_spec(spec, role)
    if own is None or own.replicas == 0:
        raise ValueError(f"replicaSpecs.{role} has no pods")
    run = spec.run_policy
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": own.replicas,
        "parallelism": own.replicas,
        "backoffLimit": run.backoff_limit,
        "suspend": run.suspend,
        "template": {
            "metadata": {"labels": pod_labels(ref, role)},
            "spec": _pod_spec(ref, spec, role, own),
        },
    }
    if run.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = run.active_deadline_seconds
    if own.restart_policy == "ExitCode":
        job_spec["podFailurePolicy"] = _pod_failure_policy()
    if role == "worker" and replicas(spec, "chief") == 0:
        # Without a chief, worker 0 exports the model: its success is the job's.
        job_spec["successPolicy"] = {"rules": [{"succeededIndexes": "0"}]}
    metadata = child_metadata(ref, job_name(ref, role))
    metadata["annotations"] = {
        GENERATION_ANNOTATION: str(ref.generation),
        SPEC_HASH_ANNOTATION: _immutable_hash(job_spec),
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def _immutable_hash(job_spec: dict[str, Any]) -> str:
    fixed = {k: v for k, v in job_spec.items() if k not in _MUTABLE_JOB_FIELDS}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]


def job_template_changed(live_job: dict[str, Any], desired_job: dict[str, Any]) -> bool:
    """Whether the live Job must be deleted and created again to match the desired one.

    A Job's pod template, completions, completionMode, podFailurePolicy and successPolicy cannot
    change once it exists, and the live template is full of Kubernetes' defaults and the Job
    controller's labels, so the two templates cannot be compared field by field. Instead each
    Job carries a digest of its immutable fields as it was built; a live Job without one was not
    built by this code, so it is replaced too. suspend, activeDeadlineSeconds and backoffLimit
    are left out of the digest: a server-side apply changes them in place."""
    live: dict[str, str] = (live_job.get("metadata") or {}).get("annotations") or {}
    desired: dict[str, str] = desired_job["metadata"]["annotations"]
    return live.get(SPEC_HASH_ANNOTATION) != desired[SPEC_HASH_ANNOTATION]
