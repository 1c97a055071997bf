"""The config watcher reads and parses --model_config_file; applying it is its listener's job."""

from __future__ import annotations

from pathlib import Path

from modelship_server.config_watcher import ConfigWatcher
from modelship_server.core.config import ModelConfig

ONE = 'model_config_list { config { name: "a" base_path: "/models/a" } }'
TWO = (
    'model_config_list { config { name: "a" base_path: "/models/a" }'
    ' config { name: "b" base_path: "/models/b" } }'
)


def test_reports_each_change_once_and_skips_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text(ONE)
    seen: list[list[ModelConfig]] = []
    watcher = ConfigWatcher(str(path), 60, seen.append)

    assert watcher.poll() is None  # unchanged since it was created
    path.write_text(TWO)
    models = watcher.poll()
    assert models is not None
    assert [m.name for m in models] == ["a", "b"]
    assert seen == [models]
    assert watcher.poll() is None  # reported once

    path.write_text("model_config_list { nonsense")
    assert watcher.poll() is None  # refused, logged, the served config kept
    path.unlink()
    assert watcher.poll() is None
    assert len(seen) == 1

    path.write_text(ONE)
    assert [m.name for m in watcher.poll() or []] == ["a"]
    assert len(seen) == 2
