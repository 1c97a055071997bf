"""Archives unpack only when every member stays inside the destination."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from modelship_server.storage.archive import archive_kind, extract
from modelship_server.storage.errors import SourceError


def make_tar(path: Path, members: list[tarfile.TarInfo], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 1
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def test_a_good_tar_unpacks(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "m.tar.gz",
        [
            entry("1", tarfile.DIRTYPE),
            entry("1/saved_model.pb"),
            entry("1/alias", tarfile.SYMTYPE, "saved_model.pb"),
        ],
    )
    out = tmp_path / "out"
    out.mkdir()
    extract(archive, out)
    assert (out / "1" / "saved_model.pb").read_bytes() == b"x"
    assert (out / "1" / "alias").is_symlink()


@pytest.mark.parametrize(
    ("member", "says"),
    [
        (entry("../evil"), "outside the destination"),
        (entry("1/../../evil"), "outside the destination"),
        (entry("/etc/evil"), "absolute path"),
        (entry("1/link", tarfile.SYMTYPE, "../../etc"), "points outside"),
        (entry("link", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
        (entry("hard", tarfile.LNKTYPE, "../outside"), "points outside"),
        (entry("dev", tarfile.CHRTYPE), "only files, folders and links"),
        (entry("fifo", tarfile.FIFOTYPE), "only files, folders and links"),
    ],
)
def test_hostile_tar_members_fail_and_write_nothing(
    tmp_path: Path, member: tarfile.TarInfo, says: str
) -> None:
    archive = make_tar(tmp_path / "evil.tar", [entry("1/saved_model.pb"), member], mode="w")
    out = tmp_path / "a" / "out"
    out.mkdir(parents=True)
    with pytest.raises(SourceError, match=says):
        extract(archive, out)
    assert list(out.iterdir()) == []
    assert not (tmp_path / "a" / "evil").exists()


def make_zip(path: Path, names: list[str], mode: int = 0) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, b"x")
    return path


def test_a_good_zip_unpacks(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "m.zip", ["1/saved_model.pb", "1/variables/variables.index"])
    extract(archive, tmp_path)
    assert (tmp_path / "1" / "variables" / "variables.index").is_file()


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "a/../../evil"])
def test_zip_traversal_fails(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "evil.zip", ["ok", name])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError):
        extract(archive, out)
    assert list(out.iterdir()) == []


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "link.zip", ["link"], mode=stat.S_IFLNK | 0o777)
    with pytest.raises(SourceError, match="only files and folders"):
        extract(archive, tmp_path)


def test_kind_from_name_or_content(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "download", [entry("a")])  # gzip magic, no suffix
    zipped = make_zip(tmp_path / "blob", ["a"])
    plain = tmp_path / "saved_model.pb"
    plain.write_bytes(b"\x08\x01")
    assert (archive_kind(tar), archive_kind(zipped), archive_kind(plain)) == ("tar", "zip", None)


def test_a_corrupt_archive_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "m.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    with pytest.raises(SourceError, match="not a readable tar archive"):
        extract(bad, tmp_path)
