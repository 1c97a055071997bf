"""Uploading a version folder: file:// appears whole in one rename, object stores get the
SavedModel marker last."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from modelship_server.storage.upload import UploadError, upload, upload_order


def model_folder(root: Path) -> Path:
    folder = root / "export"
    (folder / "variables").mkdir(parents=True)
    (folder / "assets").mkdir()
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / "fingerprint.pb").write_bytes(b"fp")
    (folder / "variables" / "variables.index").write_bytes(b"ix")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(64))
    return folder


def test_the_saved_model_marker_is_written_last(tmp_path: Path) -> None:
    order = upload_order(model_folder(tmp_path))
    assert order[-1] == "saved_model.pb"
    assert sorted(order) == sorted(
        [
            "saved_model.pb",
            "fingerprint.pb",
            "variables/variables.index",
            "variables/variables.data-00000-of-00001",
        ]
    )


def test_file_upload_copies_every_file_and_leaves_no_staging(tmp_path: Path) -> None:
    source = model_folder(tmp_path)
    base = tmp_path / "models" / "digits"
    upload(source, f"file://{base}/17")
    target = base / "17"
    for path in source.rglob("*"):
        if path.is_file():
            assert (target / path.relative_to(source)).read_bytes() == path.read_bytes()
    assert [p.name for p in base.iterdir()] == ["17"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o755)


def test_file_upload_never_overwrites_a_version(tmp_path: Path) -> None:
    source = model_folder(tmp_path)
    (tmp_path / "out" / "17").mkdir(parents=True)
    with pytest.raises(UploadError, match="already exists"):
        upload(source, f"file://{tmp_path}/out/17")
    assert list((tmp_path / "out" / "17").iterdir()) == []


def test_a_failed_file_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    source = model_folder(tmp_path)
    (source / "variables" / "zz-dangling").symlink_to(tmp_path / "gone")  # the copy fails late
    with pytest.raises(UploadError):
        upload(source, f"file://{tmp_path}/out/17")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("https://example.com/m/1", "unsupported scheme for an upload"),
        ("ftp://example.com/m/1", "unsupported scheme"),
        ("s3:///m/1", "no bucket"),
    ],
)
def test_unusable_uris_are_refused(tmp_path: Path, uri: str, words: str) -> None:
    with pytest.raises(UploadError, match=words):
        upload(model_folder(tmp_path), uri)
