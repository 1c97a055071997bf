"""CustomResourceDefinitions built from the typed models: the one source of crds/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .common import DNS_1035_LABEL
from .modeldeployment import ModelDeployment
from .schema import JsonSchema, inline_refs, structural
from .trainingjob import TrainingJob

GROUP = "modelship.dev"
VERSION = "v1alpha1"
CATEGORY = "modelship"


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    kind: str
    plural: str
    short_names: list[str]
    printer_columns: list[dict[str, Any]]
    subresources: dict[str, Any]
    # The longest metadata.name whose children still have valid names, and why.
    max_name_length: int
    name_rule: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


# Child objects are named after the CR plus a suffix, and label values stop at 63 characters.
MAX_NAME_LENGTH = 52
# A training pod's hostname `<name>-<role>-<index>` is a DNS label (at most 63 characters): the
# longest role and index, `-evaluator-1023`, leave 48 for the name.
MAX_TRAINING_JOB_NAME_LENGTH = 63 - len("-evaluator-1023")

MODEL_DEPLOYMENT = Kind(
    model=ModelDeployment,
    kind="ModelDeployment",
    plural="modeldeployments",
    short_names=["mdep"],
    printer_columns=[
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
        {"name": "Model Version", "type": "string", "jsonPath": ".status.modelVersion"},
        {"name": "URL", "type": "string", "jsonPath": ".status.url"},
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
            "priority": 1,
        },
        _age(),
    ],
    subresources={
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    },
    max_name_length=MAX_NAME_LENGTH,
    name_rule="The Service and pods are named after it.",
)

TRAINING_JOB = Kind(
    model=TrainingJob,
    kind="TrainingJob",
    plural="trainingjobs",
    short_names=["tjob"],
    printer_columns=[
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
        {"name": "Progress", "type": "integer", "jsonPath": ".status.progress.percent"},
        {
            "name": "Model",
            "type": "string",
            "jsonPath": ".status.exportedModelUri",
            "priority": 1,
        },
        _age(),
    ],
    subresources={"status": {}},
    max_name_length=MAX_TRAINING_JOB_NAME_LENGTH,
    name_rule=(
        f"At most {MAX_TRAINING_JOB_NAME_LENGTH} characters: each pod's hostname is "
        "`<name>-<role>-<index>`, a DNS label of at most 63."
    ),
)

KINDS = (MODEL_DEPLOYMENT, TRAINING_JOB)


def openapi_schema(kind: Kind, *, keep_examples: bool = False) -> JsonSchema:
    """The kind's full object schema, as the CRD carries it."""
    raw = inline_refs(kind.model.model_json_schema(by_alias=True, mode="validation"))
    body = structural(raw, keep_examples=keep_examples)
    body["properties"] = {
        "apiVersion": {"type": "string", "description": "modelship.dev/v1alpha1"},
        "kind": {"type": "string", "description": kind.kind},
        # The one metadata field a CRD schema may restrict. The Service and pods are named
        # after it, so it must be a DNS-1035 label (no dots).
        "metadata": {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "description": f"A DNS-1035 label. {kind.name_rule}",
                    "maxLength": kind.max_name_length,
                    "pattern": DNS_1035_LABEL,
                }
            },
        },
        **body["properties"],
    }
    if "status" in body["properties"]:
        # A new object reads as observedGeneration 0 until the operator writes its status, so
        # kstatus (Flux, `kubectl wait`-style tools) sees InProgress, never an unobserved Current.
        body["properties"]["status"]["default"] = {"observedGeneration": 0}
    return body


def build_crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition object for one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "modelship"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": kind.short_names,
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                    "subresources": kind.subresources,
                    "additionalPrinterColumns": kind.printer_columns,
                }
            ],
        },
    }
