"""ModelDeployment: serve a SavedModel on GPU-scheduled model-server pods."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import (
    CONDITION_LIST,
    ENV_LIST,
    GPU,
    STORAGE_URI_PATTERN,
    ApiModel,
    Condition,
    EnvVar,
    ResourceRequirements,
    Scheduling,
    cel,
    validations,
)

DEFAULT_SERVER_IMAGE = "ghcr.io/modelship/modelship:0.1.0"


class Server(ApiModel):
    """The model-server container."""

    image: str = Field(
        default=DEFAULT_SERVER_IMAGE,
        min_length=1,
        max_length=512,
        description="Model-server image.",
        examples=[DEFAULT_SERVER_IMAGE],
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="When the kubelet pulls the image."
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description="CPU and memory for the server container.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.limits) || !('nvidia.com/gpu' in self.limits)",
                    "request GPUs with spec.gpu.count, not server.resources.limits",
                    ".limits",
                ),
                cel(
                    "!has(self.requests) || !('nvidia.com/gpu' in self.requests)",
                    "request GPUs with spec.gpu.count, not server.resources.requests",
                    ".requests",
                ),
            ]
        },
    )
    env: list[EnvVar] | None = Field(
        default=None,
        description="Extra environment variables for the server.",
        json_schema_extra=ENV_LIST,
    )
    args: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Extra `tensorflow_model_server`-style flags for the server.",
        examples=[["--rest_api_timeout_in_ms=5000"]],
    )


class Autoscaling(ApiModel):
    """Scale replicas on a model-server metric read from Prometheus."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
                ".minReplicas",
            )
        )
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas.", examples=[8])
    metric: Literal["inflightRequests", "queueDepth", "requestsPerSecond", "cpuUtilization"] = (
        Field(
            default="inflightRequests",
            description="Per-pod signal the autoscaler holds at `target`.",
        )
    )
    target: int = Field(
        default=8,
        ge=1,
        le=1_000_000,
        description="Target value of the metric per pod (percent for cpuUtilization).",
        examples=[16],
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="How long the metric must stay low before replicas are removed.",
    )


class Batching(ApiModel):
    """Server-side dynamic batching (TF Serving's batching parameters)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.allowedBatchSizes) || size(self.allowedBatchSizes) == 0"
                " || self.allowedBatchSizes[size(self.allowedBatchSizes) - 1]"
                " == self.maxBatchSize",
                "the last of batching.allowedBatchSizes must equal batching.maxBatchSize",
                ".allowedBatchSizes",
            ),
            cel(
                "!has(self.allowedBatchSizes) || self.allowedBatchSizes.isSorted()",
                "batching.allowedBatchSizes must be in ascending order",
                ".allowedBatchSizes",
            ),
        )
    )

    enabled: bool = Field(default=False, description="Merge concurrent requests into batches.")
    max_batch_size: int = Field(default=32, ge=1, le=4096, description="Largest batch run.")
    batch_timeout_micros: int = Field(
        default=1000,
        ge=0,
        le=10_000_000,
        description="Longest a request waits for a batch to fill.",
    )
    max_enqueued_batches: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Queued batches beyond which requests are refused (429).",
    )
    num_batch_threads: int = Field(
        default=1, ge=1, le=256, description="Batches run at the same time."
    )
    allowed_batch_sizes: list[int] | None = Field(
        default=None,
        max_length=32,
        description="Batch sizes padded to; the last must equal maxBatchSize.",
        examples=[[8, 16, 32]],
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 4096}},
    )


class ModelDeploymentSpec(Scheduling):
    """What to serve and how."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.storageSecretName) || self.storageUri.matches('^(s3|gs|https?)://')",
                "storageSecretName applies only to s3://, gs:// and http(s):// storageUri",
                ".storageSecretName",
            ),
        )
    )

    storage_uri: str = Field(
        max_length=2048,
        pattern=STORAGE_URI_PATTERN,
        description=(
            "Where the SavedModel base path (numeric version folders) lives: pvc://CLAIM/path, "
            "s3://bucket/path, gs://bucket/path, http(s):// (a directory or an archive), file://."
        ),
        examples=["s3://models/half_plus_two"],
    )
    storage_secret_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Secret in the same namespace holding the storage credentials.",
        examples=["s3-credentials"],
    )
    model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Name clients use in URLs. Default: metadata.name.",
        examples=["half_plus_two"],
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Desired pods when autoscaling is off; `kubectl scale` sets it.",
        examples=[2],
    )
    server: Server = Field(
        default_factory=Server,
        description="The model-server container.",
        json_schema_extra={"default": {}},
    )
    gpu: GPU | None = Field(default=None, description="GPUs per pod and which GPUs qualify.")
    autoscaling: Autoscaling | None = Field(
        default=None, description="Autoscaling; when set, it owns replicas."
    )
    batching: Batching | None = Field(default=None, description="Dynamic batching.")


class ModelDeploymentStatus(ApiModel):
    """What the operator observed."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation of the spec this status describes."
    )
    replicas: int | None = Field(default=None, description="Pods that exist.")
    ready_replicas: int | None = Field(default=None, description="Pods ready to serve.")
    updated_replicas: int | None = Field(default=None, description="Pods running the newest spec.")
    selector: str | None = Field(default=None, description="Label selector of the pods (scale).")
    model_version: str | None = Field(default=None, description="Model version served.")
    url: str | None = Field(default=None, description="REST URL inside the cluster.")
    grpc_url: str | None = Field(default=None, description="gRPC address inside the cluster.")
    conditions: list[Condition] | None = Field(
        default=None, description="Ready, Reconciling, Stalled.", json_schema_extra=CONDITION_LIST
    )


class ModelDeployment(ApiModel):
    """Serve a TensorFlow SavedModel with the modelship model server."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
