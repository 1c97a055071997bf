"""The adapters' view of the models: readiness in one place, statuses, reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_servable import FakeServable
from modelship_server.core.config import ModelConfig, PolicyKind, VersionPolicy
from modelship_server.core.errors import Code, ServingError
from modelship_server.core.manager import AVAILABLE, ModelManager
from modelship_server.core.model_service import ModelService


def _models(tmp_path: Path, versions: list[str], **labels: int) -> tuple[ModelService, Path]:
    base = tmp_path / "m"
    base.mkdir()
    for version in versions:
        (base / version).mkdir()
    manager = ModelManager(lambda path: FakeServable(), poll_seconds=0)
    config = ModelConfig(
        "m",
        str(base),
        VersionPolicy(PolicyKind.ALL),
        labels=tuple(sorted(labels.items())),
    )
    manager.apply_config([config])
    return ModelService(manager), base


def test_ready_once_every_model_serves_and_not_ready_while_draining(tmp_path: Path) -> None:
    models, _ = _models(tmp_path, ["1"])
    assert models.ready
    assert models.model_ready("m")
    assert models.model_ready("m", 1)
    assert not models.model_ready("m", 2)
    assert not models.model_ready("other")

    models.start_draining()

    assert not models.ready
    assert not models.model_ready("m", 1)


def test_a_configured_model_without_versions_is_known_but_not_ready(tmp_path: Path) -> None:
    models, _ = _models(tmp_path, [])
    assert models.knows("m")
    assert not models.knows("other")
    assert not models.ready
    assert not models.model_ready("m")
    assert models.available_versions("m") == []


def test_statuses_by_version_and_by_label(tmp_path: Path) -> None:
    models, _ = _models(tmp_path, ["1", "2"], stable=1)
    assert [(s.version, s.state) for s in models.statuses("m")] == [
        (1, AVAILABLE),
        (2, AVAILABLE),
    ]
    assert [s.version for s in models.statuses("m", 2)] == [2]
    assert [s.version for s in models.statuses("m", label="stable")] == [1]
    assert models.available_versions("m") == [1, 2]


@pytest.mark.parametrize(
    ("name", "version", "label", "named"),
    [("other", None, None, "other"), ("m", 7, None, "7"), ("m", None, "canary", "canary")],
)
def test_unknown_models_versions_and_labels_are_not_found(
    tmp_path: Path, name: str, version: int | None, label: str | None, named: str
) -> None:
    models, _ = _models(tmp_path, ["1"])
    with pytest.raises(ServingError) as caught:
        models.statuses(name, version, label)
    assert caught.value.code is Code.NOT_FOUND
    assert named in caught.value.message


def test_reload_returns_once_the_new_models_serve(tmp_path: Path) -> None:
    models, _ = _models(tmp_path, ["1"])
    other = tmp_path / "n"
    (other / "3").mkdir(parents=True)

    models.reload([ModelConfig("n", str(other))])

    assert models.model_ready("n", 3)
    assert not models.knows("m")
    assert [(s.version, s.state) for s in models.statuses("n")] == [(3, AVAILABLE)]
