"""The generated CRDs and API docs match the typed models and are valid structural schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from modelship_operator.api.common import KUBERNETES_TYPED_FIELDS
from modelship_operator.api.crds import KINDS, MODEL_DEPLOYMENT, openapi_schema
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.api.render import render_all
from modelship_operator.api.trainingjob import TrainingJobSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("relative", sorted(render_all()))
def test_generated_file_is_up_to_date(relative: str) -> None:
    committed = (ROOT / relative).read_text()
    assert committed == render_all()[relative], f"{relative} drifted: run `make crds`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for name, child in node.get("properties", {}).items():
            found += _walk(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += _walk(node[key], f"{path}[{key}]")
    return found


def _keys_within(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_keys_within(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    return set(node) | _keys_within(list(node.values()))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    for path, node in _walk(openapi_schema(kind)):
        assert not {"$ref", "title", "$defs"} & node.keys(), path
        if node.get("x-kubernetes-int-or-string"):
            continue
        # Outside int-or-string, anyOf and not may only validate values, never declare types.
        for key in ("anyOf", "not"):
            assert "type" not in _keys_within(node.get(key)), f"{path}: typed {key}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


def test_model_deployment_has_scale_and_status_subresources() -> None:
    scale = MODEL_DEPLOYMENT.subresources["scale"]
    schema = openapi_schema(MODEL_DEPLOYMENT)
    assert scale["specReplicasPath"] == ".spec.replicas"
    assert "replicas" in schema["properties"]["status"]["properties"]
    assert "selector" in schema["properties"]["status"]["properties"]


def test_every_spec_field_is_documented() -> None:
    docs = (ROOT / "docs/api.md").read_text()
    for kind in KINDS:
        for path, node in _walk(openapi_schema(kind)["properties"]["spec"], "spec"):
            if "[" in path or any(f".{f}." in path for f in KUBERNETES_TYPED_FIELDS):
                continue
            assert node.get("description"), f"{kind.kind} {path} has no description"
            assert f"`{path}`" in docs, f"{path} missing from docs/api.md"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_spec_leaf_has_an_example_or_default(kind: Any) -> None:
    spec = openapi_schema(kind, keep_examples=True)["properties"]["spec"]
    for path, node in _walk(spec, "spec"):
        children = node.get("properties") or node.get("items", {}).get("properties")
        if children or "[additionalProperties]" in path or path.endswith("[items]"):
            continue
        if any(f".{field}." in path for field in KUBERNETES_TYPED_FIELDS):
            continue  # Kubernetes' own schema, documented by Kubernetes
        assert "examples" in node or "default" in node, f"{kind.kind} {path}: no example"


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_parse_with_the_typed_models(example: Path) -> None:
    for doc in yaml.safe_load_all(example.read_text()):
        model = {"ModelDeployment": ModelDeploymentSpec, "TrainingJob": TrainingJobSpec}[
            doc["kind"]
        ]
        model.model_validate(doc["spec"])


def test_defaults_come_from_the_models() -> None:
    spec = ModelDeploymentSpec.model_validate({"storageUri": "s3://bucket/model"})
    schema = openapi_schema(MODEL_DEPLOYMENT)["properties"]["spec"]["properties"]
    assert schema["replicas"]["default"] == spec.replicas == 1
    assert schema["server"]["properties"]["image"]["default"] == spec.server.image
