"""TrainingJob: single-pod or distributed TensorFlow training whose export can be served."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import (
    CONDITION_LIST,
    DNS_SUBDOMAIN,
    ENV_LIST,
    GPU,
    STORAGE_URI_PATTERN,
    VOLUME_URI_PATTERN,
    ApiModel,
    Condition,
    EnvVar,
    ResourceRequirements,
    Scheduling,
    cel,
    validations,
)


class ReplicaSpec(Scheduling):
    """Pods of one role (chief, worker, ps or evaluator)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.env) || !self.env.exists(e, e.name == 'TF_CONFIG')",
                "TF_CONFIG is set by the operator; remove it from env",
                ".env",
            )
        )
    )

    replicas: int = Field(default=1, ge=0, le=1024, description="Pods of this role.")
    image: str = Field(
        min_length=1,
        max_length=512,
        description="Training image (TensorFlow and the user's code).",
        examples=["tensorflow/tensorflow:2.21.0"],
    )
    command: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Entrypoint; the image's own when empty.",
        examples=[["python", "/code/train.py"]],
    )
    args: list[str] | None = Field(
        default=None,
        max_length=256,
        description="Arguments to the entrypoint.",
        examples=[["--epochs=10", "--batch-size=128"]],
    )
    env: list[EnvVar] | None = Field(
        default=None,
        description="Environment variables; TF_CONFIG is set by the operator.",
        json_schema_extra=ENV_LIST,
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description="CPU and memory per pod. Set GPUs with `gpu`.",
    )
    gpu: GPU | None = Field(default=None, description="GPUs per pod and which GPUs qualify.")
    restart_policy: Literal["Never", "OnFailure", "ExitCode"] = Field(
        default="Never",
        description=(
            "Never: a failed pod fails the job (subject to backoffLimit). OnFailure: restart it. "
            "ExitCode: restart only on retryable exit codes (128 and above)."
        ),
    )


class ReplicaSpecs(ApiModel):
    """The roles of a distributed TensorFlow job (TF_CONFIG cluster spec)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.chief) || has(self.worker)",
                "replicaSpecs needs a chief or a worker",
            ),
            cel(
                "(has(self.chief) && self.chief.replicas > 0)"
                " || (has(self.worker) && self.worker.replicas > 0)",
                "replicaSpecs needs at least one chief or worker replica",
            ),
            cel(
                "!has(self.chief) || self.chief.replicas <= 1",
                "replicaSpecs.chief.replicas must be 0 or 1",
                ".chief.replicas",
            ),
            cel(
                "!has(self.evaluator) || self.evaluator.replicas <= 1",
                "replicaSpecs.evaluator.replicas must be 0 or 1",
                ".evaluator.replicas",
            ),
            cel(
                "!has(self.ps) || has(self.worker)",
                "replicaSpecs.ps needs replicaSpecs.worker",
                ".ps",
            ),
            # ParameterServerStrategy runs its coordinator on the chief.
            cel(
                "!has(self.ps) || self.ps.replicas == 0"
                " || (has(self.chief) && self.chief.replicas > 0)",
                "replicaSpecs.ps needs a chief: it runs ParameterServerStrategy's coordinator",
                ".ps",
            ),
        )
    )

    chief: ReplicaSpec | None = Field(default=None, description="Coordinates and checkpoints.")
    worker: ReplicaSpec | None = Field(default=None, description="Computes gradients.")
    ps: ReplicaSpec | None = Field(default=None, description="Parameter servers.")
    evaluator: ReplicaSpec | None = Field(default=None, description="Evaluates checkpoints.")


class RunPolicy(ApiModel):
    """Retries, deadlines, clean-up and suspension (Kueue)."""

    backoff_limit: int = Field(
        default=3, ge=0, le=100, description="Failed attempts before the job is Failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Running time after which the job is failed.",
        examples=[86400],
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Seconds after finishing before the TrainingJob is deleted.",
        examples=[3600],
    )
    clean_pod_policy: Literal["All", "Running", "None"] = Field(
        default="Running", description="Which pods are deleted when the job finishes."
    )
    suspend: bool = Field(
        default=False, description="Suspended jobs have no pods; Kueue flips this to admit them."
    )


# A pvc:// path becomes a volume subPath and a file:// one a hostPath: Kubernetes refuses `..`
# in either when it creates the pod, so it is refused here, at admission.
_NO_DOT_DOT = cel(
    "!self.storageUri.matches('^(pvc|file)://') || !self.storageUri.matches('/[.][.](/|$)')",
    "a pvc:// or file:// storageUri must not contain a `..` path segment",
    ".storageUri",
)


class Output(ApiModel):
    """Where the trained SavedModel is exported."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.storageSecretName) || self.storageUri.matches('^(s3|gs|https?)://')",
                "storageSecretName applies only to s3://, gs:// and http(s):// storageUri",
                ".storageSecretName",
            ),
            _NO_DOT_DOT,
        )
    )

    storage_uri: str = Field(
        max_length=2048,
        pattern=STORAGE_URI_PATTERN,
        description="Export base path; a ModelDeployment can serve it as its storageUri.",
        examples=["s3://models/mnist"],
    )
    storage_secret_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Secret in the same namespace holding the storage credentials.",
        examples=["s3-credentials"],
    )


class Checkpoints(ApiModel):
    """Where every training pod keeps its BackupAndRestore state, so a restarted task resumes."""

    model_config = ConfigDict(json_schema_extra=validations(_NO_DOT_DOT))

    storage_uri: str = Field(
        max_length=2048,
        pattern=VOLUME_URI_PATTERN,
        description="A PersistentVolumeClaim (`pvc://claim/path`) or a node folder "
        "(`file:///path`), mounted read-write at /mnt/checkpoints. Without it the checkpoints "
        "live in an emptyDir: they survive a container restart, not a new pod.",
        examples=["pvc://training/mnist-checkpoints"],
    )


class TrainingJobSpec(ApiModel):
    """What to train and how to run it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.replicaSpecs.evaluator) || self.replicaSpecs.evaluator.replicas == 0"
                " || has(self.checkpoints)",
                "replicaSpecs.evaluator needs spec.checkpoints: the evaluator reads the exporting "
                "task's checkpoints from that shared storage",
                ".checkpoints",
            )
        )
    )

    replica_specs: ReplicaSpecs = Field(description="Pods per role.")
    run_policy: RunPolicy = Field(
        default_factory=RunPolicy,
        description="Retries, deadlines, clean-up, suspension.",
        json_schema_extra={"default": {}},
    )
    output: Output | None = Field(default=None, description="Where the SavedModel is exported.")
    checkpoints: Checkpoints | None = Field(
        default=None, description="Durable checkpoint storage shared by the training pods."
    )


class ReplicaStatus(ApiModel):
    """Pod counts of one role."""

    active: int = Field(default=0, description="Running or pending pods.")
    succeeded: int = Field(default=0, description="Pods that exited 0.")
    failed: int = Field(default=0, description="Pods that failed.")


class Progress(ApiModel):
    """Training progress reported by the chief (worker 0 without one)."""

    step: int | None = Field(default=None, description="Last global step.")
    total_steps: int | None = Field(default=None, description="Steps planned.")
    percent: int | None = Field(default=None, description="step / totalSteps, in percent.")
    epoch: int | None = Field(default=None, description="Current epoch.")
    loss: float | None = Field(default=None, description="Last reported training loss.")
    metrics: dict[str, float] | None = Field(
        default=None, description="Last reported value of each Keras metric, by name."
    )


class TrainingJobStatus(ApiModel):
    """What the operator observed."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation of the spec this status describes."
    )
    state: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(
        default=None, description="Where the job is in its life."
    )
    replica_statuses: dict[str, ReplicaStatus] | None = Field(
        default=None, description="Pod counts per role."
    )
    progress: Progress | None = Field(default=None, description="Training progress.")
    start_time: str | None = Field(
        default=None, description="When pods first ran.", json_schema_extra={"format": "date-time"}
    )
    completion_time: str | None = Field(
        default=None,
        description="When the job finished.",
        json_schema_extra={"format": "date-time"},
    )
    exported_model_uri: str | None = Field(
        default=None, description="The SavedModel version exported, ready to serve."
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Ready, Reconciling, Stalled.", json_schema_extra=CONDITION_LIST
    )


class TrainingJob(ApiModel):
    """Train a TensorFlow model on one pod or a distributed cluster."""

    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
