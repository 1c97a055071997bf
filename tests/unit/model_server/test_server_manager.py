"""The version manager with a fake loader: policies, polling, failures, availability order."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_servable import FakeServable
from modelship_server.core.config import ModelConfig, PolicyKind, VersionPolicy
from modelship_server.core.errors import Code, ServingError
from modelship_server.core.manager import ModelManager


class PathServable(FakeServable):
    def __init__(self, path: str) -> None:
        self.path = path
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def __call__(self, path: str) -> PathServable:
        if (Path(path) / "BROKEN").exists():
            raise ServingError(Code.DATA_LOSS, "broken on purpose")
        self.loaded.append(Path(path).name)
        return PathServable(path)


@pytest.mark.parametrize(
    ("policy", "on_disk", "expected"),
    [
        (VersionPolicy(), [1, 3, 2], [3]),
        (VersionPolicy(PolicyKind.LATEST, num_versions=2), [1, 3, 2], [2, 3]),
        (VersionPolicy(PolicyKind.ALL), [4, 1], [1, 4]),
        (VersionPolicy(PolicyKind.SPECIFIC, versions=(2, 9)), [1, 2], [2, 9]),
        (VersionPolicy(), [], []),
    ],
)
def test_policies(policy: VersionPolicy, on_disk: list[int], expected: list[int]) -> None:
    assert policy.aspired(on_disk) == expected


def _manager(
    tmp_path: Path, policy: VersionPolicy | None = None
) -> tuple[ModelManager, FakeLoader]:
    loader = FakeLoader()
    manager = ModelManager(loader, poll_seconds=0)
    manager.set_config([ModelConfig("m", str(tmp_path), policy or VersionPolicy())])
    return manager, loader


def test_latest_version_serves_and_old_one_unloads_after_new_is_available(tmp_path: Path) -> None:
    (tmp_path / "00000001").mkdir()
    (tmp_path / "not-a-version").mkdir()
    manager, loader = _manager(tmp_path)
    manager.sync()
    first = manager.resolve("m")
    assert first.version == 1
    assert manager.ready()

    (tmp_path / "2").mkdir()
    manager.sync()
    assert manager.resolve("m").version == 2
    assert [(s.version, s.state) for s in manager.status("m")] == [(1, "END"), (2, "AVAILABLE")]
    assert isinstance(first.servable, PathServable)
    assert first.servable.closed
    assert loader.loaded == ["00000001", "2"]
    with pytest.raises(ServingError) as info:
        manager.resolve("m", version=1)
    assert info.value.code is Code.NOT_FOUND


def test_a_failed_new_version_keeps_the_old_one_serving(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    manager, loader = _manager(tmp_path)
    manager.sync()
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "BROKEN").touch()
    manager.sync()
    manager.sync()  # not retried while it stays broken on disk
    statuses = {s.version: s for s in manager.status("m")}
    assert statuses[2].state == "END"
    assert statuses[2].error_code is Code.DATA_LOSS
    assert "broken" in statuses[2].error_message
    assert statuses[1].state == "AVAILABLE"
    assert manager.resolve("m").version == 1
    assert loader.loaded == ["1"]

    # Replacing the broken folder with a good one: remove, let a pass forget it, add again.
    (tmp_path / "2" / "BROKEN").unlink()
    (tmp_path / "2").rmdir()
    manager.sync()
    (tmp_path / "2").mkdir()
    manager.sync()
    assert manager.resolve("m").version == 2


def test_specific_policy_reports_missing_versions(tmp_path: Path) -> None:
    (tmp_path / "5").mkdir()
    manager, _ = _manager(tmp_path, VersionPolicy(PolicyKind.SPECIFIC, versions=(5, 6)))
    manager.sync()
    statuses = {s.version: s for s in manager.status("m")}
    assert statuses[5].state == "AVAILABLE"
    assert statuses[6].error_code is Code.NOT_FOUND
    (tmp_path / "6").mkdir()
    manager.sync()
    assert manager.resolve("m").version == 6
    assert manager.resolve("m", version=5).version == 5


def test_labels_and_unknown_names(tmp_path: Path) -> None:
    for v in ("1", "2"):
        (tmp_path / v).mkdir()
    loader = FakeLoader()
    manager = ModelManager(loader, poll_seconds=0)
    manager.set_config(
        [ModelConfig("m", str(tmp_path), VersionPolicy(PolicyKind.ALL), (("stable", 1),))]
    )
    manager.sync()
    assert manager.resolve("m", label="stable").version == 1
    for kwargs in ({"label": "nope"}, {"version": 3}):
        with pytest.raises(ServingError) as info:
            manager.resolve("m", **kwargs)  # type: ignore[arg-type]
        assert info.value.code is Code.NOT_FOUND
    with pytest.raises(ServingError):
        manager.resolve("other")
    with pytest.raises(ServingError):
        manager.status("other")


def test_new_config_adds_and_removes_models(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "1").mkdir(parents=True)
    (b / "7").mkdir(parents=True)
    manager = ModelManager(FakeLoader(), poll_seconds=0)
    manager.apply_config([ModelConfig("a", str(a))])
    assert manager.model_names() == ["a"]
    manager.apply_config([ModelConfig("b", str(b))])
    assert manager.model_names() == ["b"]
    assert manager.resolve("b").version == 7
    with pytest.raises(ServingError):
        manager.set_config([ModelConfig("x", "p"), ModelConfig("x", "q")])


def test_not_ready_until_every_model_has_a_version(tmp_path: Path) -> None:
    manager, _ = _manager(tmp_path)
    manager.sync()
    assert not manager.ready()
    assert not manager.model_ready("m")
    (tmp_path / "1").mkdir()
    manager.sync()
    assert manager.ready()
    assert manager.model_ready("m", 1)
    assert not manager.model_ready("m", 2)
