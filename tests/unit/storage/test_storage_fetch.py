"""The fetch sequence with fake backends: staging, unpacking, layout, and complete-or-empty."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from modelship_server.storage.errors import FetchError, SourceError
from modelship_server.storage.fetch import MARKER, Download, fetch
from modelship_server.storage.limits import Limits, Meter
from modelship_server.storage.uri import Location


def backend(files: dict[str, bytes]) -> dict[str, Download]:
    def download(location: Location, target: Path, meter: Meter) -> None:
        for name, data in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)

    return {"s3": download}


def failing(after: dict[str, bytes]) -> dict[str, Download]:
    def download(location: Location, target: Path, meter: Meter) -> None:
        backend(after)["s3"](location, target, meter)
        raise SourceError("AccessDenied: access denied")

    return {"s3": download}


MODEL = {"1/saved_model.pb": b"pb", "1/variables/variables.index": b"i", "2/saved_model.pb": b"pb"}


def test_versions_land_in_dest_with_a_marker(tmp_path: Path) -> None:
    result = fetch("s3://b/m", tmp_path / "models", backend(MODEL))
    dest = tmp_path / "models"
    assert {p.name for p in dest.iterdir()} == {"1", "2", MARKER}
    assert (result.files, result.bytes, result.versions) == (3, 5, ["1", "2"])


def test_a_single_archive_is_unpacked(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("model/saved_model.pb")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"pb"))
    fetch("s3://b/m.tar.gz", tmp_path / "d", backend({"m.tar.gz": buf.getvalue()}))
    assert (tmp_path / "d" / "1" / "saved_model.pb").read_bytes() == b"pb"


def test_a_failed_download_leaves_dest_empty(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    with pytest.raises(FetchError, match=r"^cannot read s3://b/m: AccessDenied: access denied$"):
        fetch("s3://b/m", dest, failing(MODEL))
    assert list(dest.iterdir()) == []


def test_no_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="cannot read s3://b/m: no SavedModel found"):
        fetch("s3://b/m", tmp_path / "d", backend({"notes.txt": b"x"}))
    assert list((tmp_path / "d").iterdir()) == []


def test_a_second_fetch_replaces_the_first(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    fetch("s3://b/m", dest, backend(MODEL))
    fetch("s3://b/m", dest, backend({"saved_model.pb": b"new"}))
    assert {p.name for p in dest.iterdir()} == {"1", MARKER}
    assert (dest / "1" / "saved_model.pb").read_bytes() == b"new"


def test_a_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(FetchError, match="not empty"):
        fetch("s3://b/m", tmp_path, backend(MODEL))
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_leftover_staging_from_a_killed_run_is_removed(tmp_path: Path) -> None:
    (tmp_path / ".modelship-staging-old" / "tree").mkdir(parents=True)
    fetch("s3://b/m", tmp_path, backend(MODEL))
    assert not (tmp_path / ".modelship-staging-old").exists()


def test_a_cut_tar_leaves_dest_empty(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("1/saved_model.pb")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"pb"))
    whole_member = 512 + 512  # its header and its padded data, without the end blocks
    dest = tmp_path / "d"
    with pytest.raises(FetchError, match=r"m\.tar is truncated: the tar has no end-of-archive"):
        fetch("s3://b/m.tar", dest, backend({"m.tar": buf.getvalue()[:whole_member]}))
    assert list(dest.iterdir()) == []


def test_limits_reach_the_archive(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("1/saved_model.pb")
        info.size = 1 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    archive = {"m.tgz": buf.getvalue()}
    with pytest.raises(FetchError, match=r"over the limit of 10 \(--max-ratio"):
        fetch("s3://b/m.tgz", tmp_path / "d", backend(archive), Limits(max_ratio=10))
    fetch("s3://b/m.tgz", tmp_path / "d", backend(archive), Limits(max_ratio=5000))
    assert (tmp_path / "d" / "1" / "saved_model.pb").stat().st_size == 1 << 20
