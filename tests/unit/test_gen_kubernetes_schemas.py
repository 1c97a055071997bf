"""Kubernetes' published schemas become structural CRD schemas (hack/gen_kubernetes_schemas.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_kubernetes_schemas", ROOT / "hack" / "gen_kubernetes_schemas.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCHEMAS: dict[str, Any] = {
    "io.k8s.api.core.v1.Outer": {
        "type": "object",
        "description": "Outer holds things. Second sentence is dropped.",
        "required": ["inner"],
        "properties": {
            "inner": {
                "description": "The inner one.",
                "allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Inner"}],
            },
            "amount": {
                "allOf": [
                    {
                        "$ref": "#/components/schemas/"
                        + "io.k8s.apimachinery.pkg.api.resource.Quantity"
                    }
                ]
            },
            "tags": {
                "type": "array",
                "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "atomic",
                "x-kubernetes-patch-strategy": "merge",
            },
        },
    },
    "io.k8s.api.core.v1.Inner": {
        "type": "object",
        "properties": {"name": {"type": "string", "default": ""}},
        "x-kubernetes-map-type": "atomic",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


def test_references_are_inlined_and_only_crd_keys_kept() -> None:
    gen = _generator()
    outer = gen.inline(SCHEMAS["io.k8s.api.core.v1.Outer"], SCHEMAS)
    assert outer["description"] == "Outer holds things."
    assert outer["required"] == ["inner"]
    inner = outer["properties"]["inner"]
    assert inner == {
        "type": "object",
        "description": "The inner one.",
        "properties": {"name": {"type": "string"}},
        "x-kubernetes-map-type": "atomic",
    }
    tags = outer["properties"]["tags"]
    assert tags == {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-list-type": "atomic",
    }


def test_quantity_becomes_int_or_string() -> None:
    gen = _generator()
    amount = gen.inline(SCHEMAS["io.k8s.api.core.v1.Outer"], SCHEMAS)["properties"]["amount"]
    assert amount["x-kubernetes-int-or-string"] is True
    assert amount["anyOf"] == [{"type": "integer"}, {"type": "string"}]


def test_first_sentence_keeps_abbreviations() -> None:
    gen = _generator()
    assert gen.first_sentence("Pods (e.g. web) run. More.") == "Pods (e.g. web) run."
    assert gen.first_sentence("No full stop") == "No full stop"
