"""Building blocks shared by both kinds: resources, GPUs, scheduling, conditions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

# Kubernetes' own quantity grammar ("500m", "2Gi", "1e3"); the apiserver checks it on strings.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
JsonDict = dict[str, Any]

STORAGE_URI_PATTERN = r"^(pvc|s3|gs|https?|file)://.+"

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
        }
    ),
]

# Fields whose shape is Kubernetes' own (affinity, valueFrom): kept as given, checked by the
# apiserver when the operator copies them into a pod template.
OpaqueObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


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

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources the scheduler reserves, e.g. cpu and memory.",
        examples=[{"cpu": "1", "memory": "2Gi"}],
        json_schema_extra={"maxProperties": 16},
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources the container may use. Set GPUs with `gpu.count`, not here.",
        examples=[{"cpu": "2", "memory": "4Gi"}],
        json_schema_extra={"maxProperties": 16},
    )


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
            )
        )
    )

    key: str | None = Field(
        default=None, max_length=316, description="Taint key to tolerate.", examples=["dedicated"]
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="How key and value are matched. Default: Equal.",
        examples=["Equal"],
    )
    value: str | None = Field(
        default=None, max_length=63, description="Taint value to match.", examples=["ml"]
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


class EnvVar(ApiModel):
    """An environment variable for a container."""

    name: str = Field(
        min_length=1, max_length=256, description="Variable name.", examples=["LOG_LEVEL"]
    )
    value: str | None = Field(default=None, description="Literal value.", examples=["info"])
    value_from: OpaqueObject | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef).",
        examples=[{"secretKeyRef": {"name": "api-keys", "key": "token"}}],
    )


ENV_LIST: dict[str, Any] = {
    "maxItems": 128,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


class Scheduling(ApiModel):
    """Where pods may run, passed through to the pod spec."""

    node_selector: dict[str, str] | None = Field(
        default=None,
        description="Node labels a pod's node must carry.",
        examples=[{"topology.kubernetes.io/zone": "us-east-1a"}],
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=32,
        description="Taints the pods tolerate (GPU taints are tolerated automatically).",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    affinity: OpaqueObject | None = Field(
        default=None,
        description="Pod affinity rules, merged with the GPU node affinity.",
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
