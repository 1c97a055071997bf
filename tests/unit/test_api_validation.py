"""The typed models agree with the CRD schema on what is valid (the operator parses specs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from modelship_operator.api.common import ResourceRequirements
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.api.trainingjob import TrainingJobSpec
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted((ROOT / "tests/integration/valid").glob("*.yaml"))
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "ModelDeployment": ModelDeploymentSpec,
    "TrainingJob": TrainingJobSpec,
}


def _spec(doc: dict[str, Any]) -> BaseModel:
    return SPEC_MODELS[doc["kind"]].model_validate(doc["spec"])


@pytest.mark.parametrize("manifest", VALID, ids=lambda p: p.stem)
def test_valid_manifests_parse(manifest: Path) -> None:
    _spec(yaml.safe_load(manifest.read_text()))


def test_a_fractional_cpu_number_stays_a_number() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"storageUri": "s3://m/x", "server": {"resources": {"requests": {"cpu": 0.5}}}}
    )
    assert spec.server.resources is not None
    assert spec.server.resources.requests == {"cpu": 0.5}


@pytest.mark.parametrize(
    ("requests", "limits"),
    [
        ({"cpu": "2"}, {"cpu": "1"}),
        ({"memory": "2Gi"}, {"memory": "1G"}),
        ({"cpu": 0.5}, {"cpu": "400m"}),
    ],
)
def test_a_request_over_its_limit_is_refused(
    requests: dict[str, Any], limits: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError, match="exceeds limits"):
        ResourceRequirements.model_validate({"requests": requests, "limits": limits})


@pytest.mark.parametrize(
    ("requests", "limits"),
    [({"cpu": "1"}, {"cpu": "1000m"}), ({"cpu": 0.5}, {"memory": "1Gi"}), ({"cpu": "1"}, None)],
)
def test_requests_within_limits_pass(
    requests: dict[str, Any], limits: dict[str, Any] | None
) -> None:
    ResourceRequirements.model_validate({"requests": requests, "limits": limits})


@pytest.mark.parametrize(
    "uri",
    [
        "file://models/mnist",
        "s3:///x",
        "gs://   ",
        "pvc:///x",
        "s3://models/m\n",
        "s3://models/m\x00",
        "s3://models/m ",
        "https:///archive.tgz",
        "pvc://Claim/x",
    ],
)
def test_storage_uri_is_checked_per_scheme(uri: str) -> None:
    with pytest.raises(ValidationError, match="storageUri"):
        ModelDeploymentSpec.model_validate({"storageUri": uri})


@pytest.mark.parametrize(
    "env",
    [
        {"name": "A=B", "value": "x"},
        {"name": "A\nB", "value": "x"},
        {"name": "A", "valueFrom": {}},
    ],
)
def test_bad_env_is_refused(env: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelDeploymentSpec.model_validate({"storageUri": "s3://m/x", "server": {"env": [env]}})


def test_env_with_value_and_value_from_is_refused() -> None:
    env = {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    with pytest.raises(ValidationError, match="not both"):
        ModelDeploymentSpec.model_validate({"storageUri": "s3://m/x", "server": {"env": [env]}})


@pytest.mark.parametrize("value", [True, {"amount": 1}, [1]])
def test_a_quantity_that_is_neither_number_nor_string_is_refused(value: Any) -> None:
    """The untyped schema lets these through admission; the operator's model refuses them."""
    with pytest.raises(ValidationError):
        ResourceRequirements.model_validate({"requests": {"cpu": value}})
