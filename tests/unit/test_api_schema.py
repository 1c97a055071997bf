"""pydantic JSON Schema → Kubernetes structural schema conversion."""

from __future__ import annotations

from modelship_operator.api.common import GPU, ApiModel, Quantity
from modelship_operator.api.schema import inline_refs, structural
from pydantic import BaseModel, Field


class _Inner(ApiModel):
    size: int = Field(default=2, ge=1, description="A size.")


class _Outer(ApiModel):
    inner: _Inner | None = Field(default=None, description="Optional nested object.")
    gpu: GPU | None = None
    amount: Quantity | None = None


def _schema(model: type[BaseModel]) -> dict:  # type: ignore[type-arg]
    return structural(inline_refs(model.model_json_schema(by_alias=True)))


def test_optional_nested_model_is_inlined_without_null_branch() -> None:
    inner = _schema(_Outer)["properties"]["inner"]
    assert inner["type"] == "object"
    assert inner["description"] == "Optional nested object."
    assert inner["properties"]["size"] == {
        "type": "integer",
        "default": 2,
        "minimum": 1,
        "description": "A size.",
    }
    assert "anyOf" not in inner
    assert "default" not in inner


def test_model_level_cel_rules_survive_inlining() -> None:
    rules = _schema(_Outer)["properties"]["gpu"]["x-kubernetes-validations"]
    assert {r["fieldPath"] for r in rules} == {".product", ".minMemoryMiB"}


def test_quantity_is_an_untyped_number_or_string() -> None:
    """Untyped so a number like 0.5 passes, as in pods; pattern checks strings, minimum numbers."""
    amount = _schema(_Outer)["properties"]["amount"]
    assert "type" not in amount
    assert amount["x-kubernetes-preserve-unknown-fields"] is True
    assert amount["minimum"] == 0
    assert amount["pattern"].startswith("^\\+?")


def test_examples_are_kept_only_for_docs() -> None:
    raw = inline_refs(GPU.model_json_schema(by_alias=True))
    assert "examples" not in structural(raw)["properties"]["count"]
    assert structural(raw, keep_examples=True)["properties"]["count"]["examples"] == [1]
