"""Turn a pydantic model's JSON Schema into a Kubernetes structural OpenAPI v3 schema."""

from __future__ import annotations

from typing import Any

JsonSchema = dict[str, Any]

# Keys the apiserver accepts in a CRD schema; everything else pydantic emits is dropped.
_KEPT_KEYS = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "not",
    "nullable",
}


def inline_refs(schema: JsonSchema) -> JsonSchema:
    """Replace every `$ref` with the definition it points to (CRD schemas have no refs)."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = definitions[node["$ref"].rsplit("/", 1)[-1]]
            # Keys beside the ref (description, default, validations) refine the target.
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            merged = _merge_validations(target, node, merged)
            return resolve(merged)
        return {k: resolve(v) for k, v in node.items() if k != "$defs"}

    resolved: JsonSchema = resolve(schema)
    return resolved


def _merge_validations(target: JsonSchema, ref_node: JsonSchema, merged: JsonSchema) -> JsonSchema:
    key = "x-kubernetes-validations"
    if key in target and key in ref_node:
        merged[key] = [*target[key], *ref_node[key]]
    return merged


def _drop_null_branch(node: JsonSchema) -> JsonSchema:
    """Optional[X] arrives as anyOf [X, null]; in Kubernetes an absent field says the same."""
    branches = node.get("anyOf")
    if not branches:
        return node
    non_null = [b for b in branches if b.get("type") != "null"]
    if len(non_null) == len(branches) or len(non_null) != 1:
        return node
    outer = {k: v for k, v in node.items() if k != "anyOf"}
    merged = {**non_null[0], **outer}
    key = "x-kubernetes-validations"
    if key in non_null[0] and key in outer:
        merged[key] = [*non_null[0][key], *outer[key]]
    return merged


def structural(node: JsonSchema, *, keep_examples: bool = False) -> JsonSchema:
    """Keep only what a CRD schema allows; `keep_examples` keeps `examples` for the docs."""
    node = _drop_null_branch(node)
    if node.get("x-kubernetes-int-or-string"):
        # The one place anyOf is allowed: int-or-string with no nested structure.
        return {k: v for k, v in node.items() if k != "title"}
    out: JsonSchema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or (key == "examples" and keep_examples):
            out[key] = value
        elif key not in _KEPT_KEYS:
            continue
        elif key == "properties":
            out[key] = {
                name: structural(sub, keep_examples=keep_examples) for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties"):
            if isinstance(value, dict):
                out[key] = structural(value, keep_examples=keep_examples)
        elif key == "default" and value is None:
            continue
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
        if not out.get("required"):
            out.pop("required", None)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out.setdefault("x-kubernetes-preserve-unknown-fields", True)
    return out
