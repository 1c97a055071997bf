"""TrainingJob API additions: checkpoints, progress fields, the ps rules and the name cap."""

from __future__ import annotations

import re
from typing import Any

import pytest
from modelship_operator.api.crds import TRAINING_JOB, openapi_schema
from modelship_operator.api.trainingjob import Progress, TrainingJobSpec
from pydantic import ValidationError

WORKER = {"worker": {"replicas": 2, "image": "tensorflow/tensorflow:2.21.0"}}


def _spec(**extra: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate({"replicaSpecs": WORKER, **extra})


def _rules(node: dict[str, Any]) -> list[dict[str, str]]:
    return list(node.get("x-kubernetes-validations", []))


SPEC = openapi_schema(TRAINING_JOB)["properties"]["spec"]["properties"]


@pytest.mark.parametrize(
    "uri", ["pvc://training", "pvc://training/mnist/ckpt", "file:///var/lib/ckpt"]
)
def test_checkpoints_take_a_claim_or_a_node_folder(uri: str) -> None:
    spec = _spec(checkpoints={"storageUri": uri})
    assert spec.checkpoints is not None
    assert spec.checkpoints.storage_uri == uri


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/ckpt", "gs://b/c", "https://host/c", "file://relative", "pvc://", "pvc://A/x"],
)
def test_checkpoints_refuse_what_cannot_be_mounted(uri: str) -> None:
    with pytest.raises(ValidationError, match="storageUri"):
        _spec(checkpoints={"storageUri": uri})


def _dot_dot_pattern(node: dict[str, Any]) -> str:
    rule = next(r["rule"] for r in _rules(node) if "`..`" in r["message"])
    # The rule's second regular expression is the `..` segment test (RE2 and re agree on it).
    return re.findall(r"matches\('([^']*)'\)", rule)[1]


@pytest.mark.parametrize("field", ["checkpoints", "output"])
@pytest.mark.parametrize(
    ("uri", "refused"),
    [
        ("pvc://c/../x", True),
        ("file:///data/..", True),
        ("pvc://c/a/../b", True),
        ("pvc://c/mnist..v2", False),
        ("file:///data/..hidden", False),
        ("pvc://c/x", False),
    ],
)
def test_a_dot_dot_segment_is_refused_where_it_becomes_a_path(
    field: str, uri: str, refused: bool
) -> None:
    node = SPEC[field]
    assert bool(re.search(_dot_dot_pattern(node), uri)) is refused
    rule = next(r for r in _rules(node) if "`..`" in r["message"])
    assert rule["fieldPath"] == ".storageUri"


def test_ps_needs_a_chief_and_a_worker() -> None:
    rules = {r["message"]: r for r in _rules(SPEC["replicaSpecs"])}
    chief = next(r for m, r in rules.items() if "ps needs a chief" in m)
    assert chief["fieldPath"] == ".ps"
    assert "self.chief.replicas > 0" in chief["rule"]
    assert "self.ps.replicas == 0" in chief["rule"]  # a ps role at zero needs nothing
    assert any("ps needs replicaSpecs.worker" in m for m in rules)


def test_name_is_capped_so_the_longest_hostname_is_a_dns_label() -> None:
    name = openapi_schema(TRAINING_JOB)["properties"]["metadata"]["properties"]["name"]
    longest_pod = "x" * name["maxLength"] + "-evaluator-1023"
    assert len(longest_pod) == 63
    assert "63" in name["description"]


def test_progress_carries_epoch_loss_and_metrics() -> None:
    progress = Progress.model_validate(
        {
            "step": 10,
            "totalSteps": 40,
            "percent": 25,
            "epoch": 2,
            "loss": 0.25,
            "metrics": {"accuracy": 0.875},
        }
    )
    assert progress.model_dump(by_alias=True, exclude_none=True) == {
        "step": 10,
        "totalSteps": 40,
        "percent": 25,
        "epoch": 2,
        "loss": 0.25,
        "metrics": {"accuracy": 0.875},
    }
    schema = openapi_schema(TRAINING_JOB)["properties"]["status"]["properties"]["progress"]
    assert schema["properties"]["metrics"]["additionalProperties"] == {"type": "number"}
    assert schema["properties"]["loss"]["type"] == "number"
