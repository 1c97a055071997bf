"""Building blocks shared by both kinds: resources, GPUs, scheduling, conditions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from kubernetes.utils import parse_quantity
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .kubernetes_schemas import SCHEMAS as KUBERNETES

JsonDict = dict[str, Any]

# Kubernetes' name grammars (k8s.io/apimachinery/pkg/util/validation).
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"^{DNS_LABEL}(\.{DNS_LABEL})*$"
# Services are named after the object, and a Service name is a DNS-1035 label.
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A label key or taint key: an optional DNS-subdomain prefix and a name of at most 63.
QUALIFIED_NAME = (
    rf"^({DNS_LABEL}(\.{DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
)
# What Kubernetes allows in an env name: printable ASCII except '='.
ENV_NAME = r"^[ -<>-~]+$"

# One character of a URI: no whitespace, no control characters (NUL included).
_URI_CHAR = r"[^\s\x00-\x1f\x7f]"
# Per scheme: a claim that is a valid PVC name, a non-empty bucket or host, file:// absolute.
STORAGE_URI_PATTERN = (
    rf"^((pvc://{DNS_LABEL}(\.{DNS_LABEL})*)|((s3|gs|https?)://[^/\s\x00-\x1f\x7f]+))"
    rf"(/{_URI_CHAR}*)?$|^file:///{_URI_CHAR}*$"
)
# The mountable subset of STORAGE_URI_PATTERN: storage a pod can write to in place.
VOLUME_URI_PATTERN = rf"^pvc://{DNS_LABEL}(\.{DNS_LABEL})*(/{_URI_CHAR}*)?$|^file:///{_URI_CHAR}*$"

# Kubernetes' quantity grammar ("500m", "2Gi", "1e3") without a minus sign: none is negative.
NON_NEGATIVE_QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
GPU_RESOURCE = "nvidia.com/gpu"

# A quantity as pods take it: a string in Kubernetes' grammar or a plain number (`cpu: 0.5`).
# int-or-string would refuse 0.5 and a structural schema has no number-or-string, so the value
# is untyped: `pattern` then checks strings only and `minimum` numbers only. A CRD's CEL rules
# cannot read untyped values, so requests-within-limits is refused at admission by the
# ValidatingAdmissionPolicies of admission.py (whose CEL sees them as dyn: `string()` of a number,
# then Kubernetes' quantity library), and checked again by the operator (InvalidSpec), which is
# all that remains where the policies are not installed (chart value admissionPolicy.enabled).
# Strict: the schema cannot refuse `cpu: true` or an object there, so the typed model does.
Quantity = Annotated[
    StrictInt | StrictFloat | StrictStr,
    WithJsonSchema(
        {
            "x-kubernetes-preserve-unknown-fields": True,
            "pattern": NON_NEGATIVE_QUANTITY,
            "minimum": 0,
        }
    ),
]
# Map-level, since CEL cannot read a map of untyped values: GPUs are set with gpu.count.
_NO_GPU_KEY: JsonDict = {"maxProperties": 16, "not": {"required": [GPU_RESOURCE]}}
# No CEL message either, so the `not` above says only "must not validate the schema (not)".
# An enum's error lists its values: this one (which the quantity pattern refuses as a value)
# says what to do instead, on the key's own path:
#   spec.server.resources.limits.nvidia.com/gpu: Unsupported value: 1: supported values:
#   "none: set GPUs with spec.gpu.count (in a TrainingJob: replicaSpecs.<role>.gpu.count)"
# A one-branch anyOf on the object holding the maps, since the maps' own anyOf is pydantic's
# Optional (and the CRD schema keeps no allOf).
GPU_RESOURCE_HINT = (
    "none: set GPUs with spec.gpu.count (in a TrainingJob: replicaSpecs.<role>.gpu.count)"
)
_GPU_KEY_HINT: JsonDict = {"properties": {GPU_RESOURCE: {"enum": [GPU_RESOURCE_HINT]}}}
_GPU_HINTS: JsonDict = {
    "anyOf": [{"properties": {"requests": _GPU_KEY_HINT, "limits": _GPU_KEY_HINT}}]
}

# CEL raw strings keep the regular expressions' backslashes as they are.
_QUALIFIED_KEYS_RULE = f"self.all(k, size(k) <= 316 && k.matches(r'{QUALIFIED_NAME}'))"


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One CEL `x-kubernetes-validations` entry; fieldPath makes the error name the field."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: JsonDict) -> JsonDict:
    return {"x-kubernetes-validations": list(rules)}


class ResourceRequirements(ApiModel):
    """Compute resources, as in a container's `resources`."""

    model_config = ConfigDict(json_schema_extra=_GPU_HINTS)

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources the scheduler reserves, e.g. cpu and memory.",
        examples=[{"cpu": "1", "memory": "2Gi"}],
        json_schema_extra=_NO_GPU_KEY,
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources the container may use. Set GPUs with `gpu.count`, not "
        "here. A request must not exceed its limit.",
        examples=[{"cpu": "2", "memory": "4Gi"}],
        json_schema_extra=_NO_GPU_KEY,
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        for name, request in (self.requests or {}).items():
            limit = (self.limits or {}).get(name)
            if limit is None:
                continue
            try:
                over = parse_quantity(request) > parse_quantity(limit)  # type: ignore[no-untyped-call]
            except ValueError:
                continue  # the grammar is the schema's to refuse
            if over:
                raise ValueError(f"requests.{name} ({request}) exceeds limits.{name} ({limit})")
        return self


class GPU(ApiModel):
    """GPUs per pod and which nodes qualify (GPU Feature Discovery labels)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.product) || self.count > 0",
                "gpu.product needs gpu.count > 0",
                ".product",
            ),
            cel(
                "!has(self.minMemoryMiB) || self.count > 0",
                "gpu.minMemoryMiB needs gpu.count > 0",
                ".minMemoryMiB",
            ),
        )
    )

    count: int = Field(
        default=0,
        ge=0,
        le=16,
        description="GPUs per pod, requested as the `nvidia.com/gpu` extended resource.",
        examples=[1],
    )
    product: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE,
        description="Required value of the node label `nvidia.com/gpu.product`.",
        examples=["NVIDIA-A100-SXM4-40GB"],
    )
    min_memory_mi_b: int | None = Field(
        default=None,
        alias="minMemoryMiB",
        ge=1,
        description="Minimum GPU memory in MiB (node label `nvidia.com/gpu.memory`).",
        examples=[40960],
    )


class Toleration(ApiModel):
    """A pod toleration, as in Kubernetes' core API."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value)",
                "a toleration with operator Exists takes no value",
                ".value",
            ),
            cel(
                "(has(self.key) && self.key != '')"
                " || (has(self.operator) && self.operator == 'Exists')",
                "a toleration without a key must have operator Exists",
                ".operator",
            ),
            cel(
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerationSeconds applies only to effect NoExecute",
                ".tolerationSeconds",
            ),
        )
    )

    key: str | None = Field(
        default=None,
        max_length=316,
        pattern=f"^$|{QUALIFIED_NAME}",
        description="Taint key to tolerate; empty with operator Exists matches every taint.",
        examples=["dedicated"],
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="How key and value are matched. Default: Equal.",
        examples=["Equal"],
    )
    value: str | None = Field(
        default=None,
        max_length=63,
        pattern=LABEL_VALUE,
        description="Taint value to match.",
        examples=["ml"],
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description="Taint effect to tolerate; empty matches all effects.",
        examples=["NoSchedule"],
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        description="How long a NoExecute taint is tolerated.",
        examples=[300],
    )


# Fields whose schema is generated from Kubernetes' OpenAPI (hack/gen_kubernetes_schemas.py).
KUBERNETES_TYPED_FIELDS = ("affinity", "valueFrom", "namespaceSelector", "podSelector")
# Kubernetes' own schema (generated), with exactly one source as Kubernetes requires.
EnvVarSource = Annotated[
    dict[str, Any],
    Field(min_length=1, max_length=1),
    WithJsonSchema({**KUBERNETES["EnvVarSource"], "minProperties": 1, "maxProperties": 1}),
]
# Kubernetes' own schema (generated): a typo such as `nodeAfinity` is refused at admission.
Affinity = Annotated[dict[str, Any], WithJsonSchema(KUBERNETES["Affinity"])]
# Kubernetes' own schema (generated): matchLabels and matchExpressions, as in a NetworkPolicy.
LabelSelector = Annotated[dict[str, Any], WithJsonSchema(KUBERNETES["LabelSelector"])]


class EnvVar(ApiModel):
    """An environment variable for a container."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.valueFrom) || !has(self.value) || self.value == ''",
                "env takes value or valueFrom, not both",
                ".valueFrom",
            )
        )
    )

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_NAME,
        description="Variable name: printable ASCII, no `=`.",
        examples=["LOG_LEVEL"],
    )
    value: str | None = Field(default=None, description="Literal value.", examples=["info"])
    value_from: EnvVarSource | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef, "
        "resourceFieldRef): Kubernetes' EnvVarSource, checked at admission.",
        examples=[{"secretKeyRef": {"name": "api-keys", "key": "token"}}],
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value_from is not None and self.value:
            raise ValueError("env takes value or valueFrom, not both")
        return self


ENV_LIST: dict[str, Any] = {
    "maxItems": 128,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


class Scheduling(ApiModel):
    """Where pods may run, passed through to the pod spec."""

    node_selector: dict[str, LabelValue] | None = Field(
        default=None,
        description="Node labels a pod's node must carry.",
        json_schema_extra={
            "maxProperties": 64,
            **validations(cel(_QUALIFIED_KEYS_RULE, "node selector keys must be label keys")),
        },
        examples=[{"topology.kubernetes.io/zone": "us-east-1a"}],
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=32,
        description="Taints the pods tolerate (GPU taints are tolerated automatically).",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Pod affinity rules, merged with the GPU node affinity: Kubernetes' "
        "core/v1 Affinity, checked at admission.",
        examples=[
            {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "topology.kubernetes.io/zone",
                                "labelSelector": {"matchLabels": {"team": "vision"}},
                            },
                        }
                    ]
                }
            }
        ],
    )


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(max_length=316, description="Ready, Reconciling or Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(description="Condition status.")
    reason: str = Field(default="", max_length=1024, description="CamelCase reason.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: str | None = Field(
        default=None,
        description="When status last changed.",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this condition was computed from."
    )


CONDITION_LIST: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
