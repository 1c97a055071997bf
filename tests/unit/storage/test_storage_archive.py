"""Archives unpack only when every member stays inside the destination."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from modelship_server.storage.archive import archive_kind, extract
from modelship_server.storage.errors import SourceError
from modelship_server.storage.limits import Limits


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


def plain_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TWO = {"1/saved_model.pb": b"p" * 600, "1/variables/variables.index": b"i" * 100}
# Header, 600 bytes padded to 1024, header, 100 bytes padded to 512: both members are whole.
AT_MEMBER_BOUNDARY = 512 + 1024 + 512 + 512


@pytest.mark.parametrize(
    ("cut", "says"),
    [
        (AT_MEMBER_BOUNDARY, "truncated: the tar has no end-of-archive blocks"),
        (AT_MEMBER_BOUNDARY + 512, "truncated: the tar has no end-of-archive blocks"),
        (512 + 300, "not a readable tar archive"),
    ],
)
def test_a_cut_tar_fails(tmp_path: Path, cut: int, says: str) -> None:
    archive = tmp_path / "m.tar"
    archive.write_bytes(plain_tar(TWO)[:cut])
    with pytest.raises(SourceError, match=says):
        extract(archive, tmp_path)


def test_a_whole_plain_tar_unpacks(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar"
    archive.write_bytes(plain_tar(TWO))
    extract(archive, tmp_path)
    assert (tmp_path / "1" / "saved_model.pb").read_bytes() == TWO["1/saved_model.pb"]


@pytest.mark.parametrize("keep", [0.5, 0.9, -4])
def test_a_cut_tar_gz_fails(tmp_path: Path, keep: float) -> None:
    whole = gzip.compress(plain_tar(TWO))
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(whole[: int(len(whole) * keep)] if keep > 0 else whole[: int(keep)])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError, match=r"m\.tar\.gz is not a readable tar archive"):
        extract(archive, out)


def test_a_tar_gz_with_a_bad_crc_fails(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(plain_tar(TWO)))
    whole[-8] ^= 0xFF  # the CRC32 in gzip's trailer
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(bytes(whole))
    with pytest.raises(SourceError, match="CRC check failed"):
        extract(archive, tmp_path)


def test_a_cut_zip_fails(tmp_path: Path) -> None:
    whole = make_zip(tmp_path / "whole.zip", ["1/saved_model.pb", "1/x"]).read_bytes()
    archive = tmp_path / "m.zip"
    archive.write_bytes(whole[: len(whole) - 30])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError, match=r"m\.zip is not a readable zip archive"):
        extract(archive, out)
    assert list(out.iterdir()) == []


def bomb_tar_gz(path: Path, size: int) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("1/variables/variables.data-00000-of-00001")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def bomb_zip(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("1/variables/variables.data-00000-of-00001", bytes(size))
    return path


@pytest.mark.parametrize("make", [bomb_tar_gz, bomb_zip])
def test_an_archive_expanding_past_the_ratio_fails_before_writing(
    tmp_path: Path, make: Callable[[Path, int], Path]
) -> None:
    archive = make(tmp_path / "bomb", 4 << 20)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError, match=r"would expand \d+ times .* over the limit of 50 "):
        extract(archive, out, Limits(max_ratio=50))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("make", [bomb_tar_gz, bomb_zip])
def test_an_archive_over_the_size_limit_fails_before_writing(
    tmp_path: Path, make: Callable[[Path, int], Path]
) -> None:
    archive = make(tmp_path / "big", 1 << 20)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        SourceError, match=r"would unpack to 1048576 bytes, over the limit of 1000 "
    ):
        extract(archive, out, Limits(max_bytes=1000))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("make", [bomb_tar_gz, bomb_zip])
def test_the_same_archive_within_raised_limits_unpacks(
    tmp_path: Path, make: Callable[[Path, int], Path]
) -> None:
    archive = make(tmp_path / "big", 1 << 20)
    out = tmp_path / "out"
    out.mkdir()
    extract(archive, out, Limits(max_ratio=100_000))
    assert (out / "1" / "variables" / "variables.data-00000-of-00001").stat().st_size == 1 << 20


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_an_archive_with_too_many_members_fails_before_writing(tmp_path: Path, kind: str) -> None:
    names = [f"1/assets/{i}" for i in range(50)]
    if kind == "zip":
        archive = make_zip(tmp_path / "many.zip", names)
    else:
        archive = tmp_path / "many.tar"
        archive.write_bytes(plain_tar(dict.fromkeys(names, b"")))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError, match=r"holds 50 members, over the limit of 49 \(--max-files"):
        extract(archive, out, Limits(max_files=49))
    assert list(out.iterdir()) == []
    extract(archive, out, Limits(max_files=50))
    assert len(list((out / "1" / "assets").iterdir())) == 50
