"""A fetched tree becomes numeric version folders, each a SavedModel."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_server.storage.errors import SourceError
from modelship_server.storage.layout import normalise, versions


def saved_model(folder: Path) -> Path:
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / "variables" / "variables.index").write_bytes(b"i")
    return folder


def test_version_folders_stay(tmp_path: Path) -> None:
    saved_model(tmp_path / "1")
    saved_model(tmp_path / "00000123")
    assert normalise(tmp_path) == tmp_path
    assert versions(tmp_path) == ["1", "00000123"]


def test_a_bare_saved_model_becomes_version_1(tmp_path: Path) -> None:
    saved_model(tmp_path)
    (tmp_path / "1").mkdir()  # a folder named 1 inside the model must survive the move
    base = normalise(tmp_path)
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert (base / "1" / "saved_model.pb").is_file()
    assert (base / "1" / "variables" / "variables.index").is_file()
    assert (base / "1" / "1").is_dir()


def test_a_wrapping_folder_is_stepped_into(tmp_path: Path) -> None:
    saved_model(tmp_path / "export" / "mnist" / "7")
    (tmp_path / "__MACOSX").mkdir()
    assert normalise(tmp_path) == tmp_path / "export" / "mnist"


def test_nothing_like_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hi")
    (tmp_path / "weights.h5").write_text("hi")
    with pytest.raises(SourceError, match=r"no SavedModel found.*README\.md, weights\.h5"):
        normalise(tmp_path)


def test_a_version_without_saved_model_is_refused(tmp_path: Path) -> None:
    saved_model(tmp_path / "1")
    (tmp_path / "2").mkdir()
    with pytest.raises(SourceError, match=r"version folder.* 2 hold no saved_model\.pb"):
        normalise(tmp_path)
