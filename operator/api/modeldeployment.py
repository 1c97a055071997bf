"""ModelDeployment: serve a SavedModel on GPU-scheduled model-server pods."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field

from .common import (
    CONDITION_LIST,
    DNS_SUBDOMAIN,
    ENV_LIST,
    GPU,
    STORAGE_URI_PATTERN,
    ApiModel,
    Condition,
    EnvVar,
    JsonDict,
    LabelSelector,
    ResourceRequirements,
    Scheduling,
    cel,
    validations,
)

DEFAULT_SERVER_IMAGE = "ghcr.io/modelship/modelship:0.1.0"


class ServerTls(ApiModel):
    """TLS on the model server's REST and gRPC ports, from a Secret in cert-manager's shape."""

    secret_name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="A Secret in the same namespace with `tls.crt` and `tls.key` (and `ca.crt` "
        "for clientAuth), as cert-manager writes it. Mounted read-only; a renewed certificate "
        "is used for new connections within a minute or two, without a restart or a dropped "
        "request.",
        examples=["my-model-tls"],
    )
    client_auth: bool = Field(
        default=False,
        description="Mutual TLS: clients must present a certificate signed by the Secret's "
        "`ca.crt` (both protocols). Without `ca.crt` in the Secret the server does not start, "
        "and the ModelDeployment's Ready condition says so.",
    )


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
    tls: ServerTls | None = Field(
        default=None,
        description="Serve REST (HTTPS) and gRPC over TLS. Probes, the operator's version "
        "check and Prometheus scrapes then use a plain-HTTP health port (8502) that answers "
        "only health, model status and metrics.",
    )


AutoscalingMetric = Literal[
    "inflightRequests",
    "queueDepth",
    "requestsPerSecond",
    "cpuUtilization",
    "p99LatencyMs",
    "promql",
]


class ScalingPolicy(ApiModel):
    """A most-allowed change in one period, as in the HPA's `behavior`."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: at most `value` pods; Percent: at most `value` percent of the "
        "replicas at the start of the period.",
        examples=["Pods"],
    )
    value: int = Field(ge=1, le=10_000, description="Pods or percent.", examples=[4])
    period_seconds: int = Field(
        ge=1, le=1800, description="Length of the period the limit applies to.", examples=[15]
    )


class ScalingRules(ApiModel):
    """How fast one direction of scaling may go."""

    stabilization_window_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="Recommendations of this window are considered: scale-up takes their "
        "lowest, scale-down their highest. Default: 10 for scaleUp, 300 for scaleDown.",
        examples=[60],
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(
        default="Max",
        description="Which policy limits: the one allowing the most change (Max), the least "
        "(Min), or none: no scaling in this direction (Disabled).",
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None,
        max_length=10,
        description="Limits on the change per period; none: no limit.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )


class ScalingBehavior(ApiModel):
    """Scale-up and scale-down speed, in the HPA's `behavior` shape, plus the panic threshold."""

    scale_up: ScalingRules | None = Field(default=None, description="Rules for adding pods.")
    scale_down: ScalingRules | None = Field(default=None, description="Rules for removing pods.")
    panic_threshold_percent: int | None = Field(
        default=None,
        ge=110,
        le=10_000,
        description="When the metric reaches this percent of target, scale up at once, "
        "skipping the scale-up stabilization window (a burst). Default: 200. Mode operator "
        "only: KEDA's HPA has no panic mode, so mode keda refuses it.",
        examples=[200],
    )


AutoscalingMode = Literal["operator", "keda"]
DEFAULT_PANIC_THRESHOLD_PERCENT = 200
DEFAULT_SCALE_UP_WINDOW_SECONDS = 10
DEFAULT_SCALE_DOWN_WINDOW_SECONDS = 300


class Autoscaling(ApiModel):
    """Scale replicas on a model-server metric read from Prometheus."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
                ".minReplicas",
            ),
            cel(
                "self.metric == 'promql' ? has(self.promql) : !has(self.promql)",
                "autoscaling.promql is required when autoscaling.metric is promql, and only then",
                ".promql",
            ),
            cel(
                "!has(self.mode) || self.mode != 'keda' || !has(self.behavior)"
                " || !has(self.behavior.panicThresholdPercent)",
                "autoscaling.behavior.panicThresholdPercent has no KEDA equivalent (the HPA has"
                " no panic mode): remove it, or use mode operator",
                ".behavior.panicThresholdPercent",
            ),
            cel(
                "(has(self.mode) && self.mode == 'keda') || !has(self.kedaTriggerAuthentication)",
                "autoscaling.kedaTriggerAuthentication applies only to mode keda",
                ".kedaTriggerAuthentication",
            ),
        )
    )

    mode: AutoscalingMode = Field(
        default="operator",
        description="Who scales: `operator`, the operator's own autoscaler (one Prometheus "
        "query per metric kind per tick, panic mode, explained decisions); `keda`, a KEDA "
        "ScaledObject the operator writes (same name) whose HPA sets spec.replicas through "
        "the scale subresource. Needs KEDA installed.",
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas.", examples=[8])
    metric: AutoscalingMetric = Field(
        default="inflightRequests",
        description="Signal the autoscaler holds at `target`: per pod for inflightRequests, "
        "queueDepth, requestsPerSecond, cpuUtilization (percent of the CPU request) and promql "
        "(the query's load); for the whole deployment for p99LatencyMs (milliseconds).",
    )
    target: int = Field(
        default=8,
        ge=1,
        le=1_000_000,
        description="Target value of the metric (per pod, percent for cpuUtilization, "
        "milliseconds for p99LatencyMs).",
        examples=[16],
    )
    promql: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="For metric promql: a PromQL expression returning an instant vector whose "
        "summed value is the load; held at `target` per pod.",
        examples=['sum(rate(http_requests_total{service="mnist"}[1m]))'],
    )
    behavior: ScalingBehavior | None = Field(
        default=None, description="Scale-up and scale-down speed (HPA `behavior` style)."
    )
    keda_trigger_authentication: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Mode keda: a KEDA TriggerAuthentication in the same namespace with the "
        "Prometheus credentials (bearer token or TLS, and `authModes`), set as the trigger's "
        "authenticationRef.",
        examples=["prometheus-auth"],
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
        description="Batch sizes padded to, each once; the last must equal maxBatchSize.",
        examples=[[8, 16, 32]],
        json_schema_extra={
            "items": {"type": "integer", "minimum": 1, "maximum": 4096},
            "x-kubernetes-list-type": "set",
        },
    )


PROMETHEUS_LABELS: JsonDict = {"app.kubernetes.io/name": "prometheus"}
SELECTOR_EXAMPLE = {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}


class NetworkPeer(ApiModel):
    """Pods allowed in, as a Kubernetes NetworkPolicyPeer without ipBlock."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.namespaceSelector) || has(self.podSelector)",
                "set namespaceSelector, podSelector or both",
            )
        )
    )

    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces whose pods may connect ({} : every namespace). Alone: every "
        "pod of those namespaces; with podSelector: the matching pods of those namespaces.",
        examples=[SELECTOR_EXAMPLE],
    )
    pod_selector: LabelSelector | None = Field(
        default=None,
        description="Pods that may connect; without namespaceSelector, in this namespace only.",
        examples=[{"matchLabels": {"app": "frontend"}}],
    )


def default_prometheus_peer() -> NetworkPeer:
    return NetworkPeer(namespace_selector={}, pod_selector={"matchLabels": PROMETHEUS_LABELS})


class NetworkPolicy(ApiModel):
    """A NetworkPolicy (same name) admitting ingress to the model-server pods only from the
    listed peers, plus Prometheus; egress is not restricted (the storage fetch needs it)."""

    allow_from: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=32,
        description="Peers that may reach the REST and gRPC ports. Empty: none but Prometheus.",
        json_schema_extra={"default": [], "x-kubernetes-list-type": "atomic"},
    )
    prometheus: NetworkPeer = Field(
        default_factory=default_prometheus_peer,
        description="Who may scrape /metrics, on the plain-HTTP port it is served on (REST; "
        "with server.tls the health port), which the operator's pods also reach for the version "
        "check. Default: pods labelled app.kubernetes.io/name=prometheus in any namespace.",
        json_schema_extra={
            "default": {"namespaceSelector": {}, "podSelector": {"matchLabels": PROMETHEUS_LABELS}}
        },
    )


# Not a plain `not: {enum: [cpuUtilization]}`: the apiserver reports the branch of anyOf that
# came closest, and an enum's error lists its values, so the last one says what to do:
#   spec.autoscaling.metric: Unsupported value: "cpuUtilization": supported values: ...,
#   "cpuUtilization (only with spec.server.resources.requests.cpu set)"
# (and when the other branch came closest: spec.server.resources.requests.cpu: Required value).
CPU_UTILIZATION_HINT = "cpuUtilization (only with spec.server.resources.requests.cpu set)"
CPU_UTILIZATION_ABSENT: JsonDict = {
    "enum": [m for m in get_args(AutoscalingMetric) if m != "cpuUtilization"]
    + [CPU_UTILIZATION_HINT]
}
CPU_REQUEST: JsonDict = {
    "resources": {"required": ["requests"], "properties": {"requests": {"required": ["cpu"]}}}
}
CPU_UTILIZATION_NEEDS_CPU_REQUEST: list[Any] = [
    {"properties": {"autoscaling": {"properties": {"metric": CPU_UTILIZATION_ABSENT}}}},
    {
        "required": ["server"],
        "properties": {"server": {"required": ["resources"], "properties": CPU_REQUEST}},
    },
]


class ModelDeploymentSpec(Scheduling):
    """What to serve and how."""

    model_config = ConfigDict(
        json_schema_extra={
            **validations(
                cel(
                    "has(self.storageUri) != has(self.trainingJobName)",
                    "set exactly one of spec.storageUri (a model in storage) and "
                    "spec.trainingJobName (the model a TrainingJob exports)",
                ),
                cel(
                    "!has(self.storageSecretName) || !has(self.storageUri)"
                    " || self.storageUri.matches('^(s3|gs|https?)://')",
                    "storageSecretName applies only to s3://, gs:// and http(s):// storageUri",
                    ".storageSecretName",
                ),
            ),
            # cpuUtilization is a percent of the CPU request. CEL cannot read the requests map
            # (its values are untyped so that `cpu: 0.5` passes): a plain schema rule instead.
            "anyOf": CPU_UTILIZATION_NEEDS_CPU_REQUEST,
        }
    )

    storage_uri: str | None = Field(
        default=None,
        max_length=2048,
        pattern=STORAGE_URI_PATTERN,
        description=(
            "Where the SavedModel base path (numeric version folders) lives: pvc://CLAIM/path, "
            "s3://bucket/path, gs://bucket/path, http(s):// (a directory or an archive), "
            "file:///absolute/path. No whitespace or control characters. Exactly one of "
            "storageUri and trainingJobName."
        ),
        examples=["s3://models/half_plus_two"],
    )
    training_job_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Serve what this TrainingJob (same namespace) exports: its newest exported version, "
            "rolled out (without failed requests) whenever a later run exports a newer one. "
            "Exactly one of storageUri and trainingJobName."
        ),
        examples=["mnist-distributed"],
    )
    storage_secret_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Secret in the same namespace holding the storage credentials. With trainingJobName, "
            "defaults to the TrainingJob's output.storageSecretName."
        ),
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
        description="Desired pods when autoscaling is off; `kubectl scale` sets it. Ignored "
        "(with a ScaleIgnored event) while `autoscaling` is set in mode operator; in mode keda "
        "it is what KEDA's HPA writes (kept within minReplicas and maxReplicas).",
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
    network_policy: NetworkPolicy | None = Field(
        default=None,
        description="When set, a NetworkPolicy lets only these peers and Prometheus reach the "
        "pods; removing it deletes the NetworkPolicy. Needs a CNI that enforces them.",
    )


class AutoscalingStatus(ApiModel):
    """What the autoscaler last saw and decided."""

    mode: str | None = Field(
        default=None, description="Who scales: operator, or keda (through a ScaledObject)."
    )
    metric: str | None = Field(default=None, description="The metric held at target.")
    current_value: float | None = Field(
        default=None,
        description="Its value at the last decision (per pod, or for the deployment for "
        "p99LatencyMs).",
    )
    target: int | None = Field(default=None, description="The target it is held at.")
    desired_replicas: int | None = Field(
        default=None, description="Replicas the autoscaler set on the Deployment."
    )
    last_scale_time: str | None = Field(
        default=None,
        description="When the autoscaler last changed the replicas.",
        json_schema_extra={"format": "date-time"},
    )
    reason: str | None = Field(default=None, description="CamelCase reason of the last decision.")
    message: str | None = Field(
        default=None,
        description="The last scale decision with its numbers, e.g. "
        "`2 → 5: inflightRequests 71 per pod, target 16`.",
    )


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
    autoscaling: AutoscalingStatus | None = Field(
        default=None, description="The autoscaler's last reading and decision."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Reconciling, Stalled; ScalingActive while autoscaling is set.",
        json_schema_extra=CONDITION_LIST,
    )


class ModelDeployment(ApiModel):
    """Serve a TensorFlow SavedModel with the modelship model server."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
