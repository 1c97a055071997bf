"""Recognising and safely unpacking .tar, .tar.gz/.tgz and .zip archives.

Every member is checked before anything is written: absolute names, `..`, links that leave the
destination and device or FIFO files fail the whole archive, so a hostile archive writes nothing.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import SourceError
from .paths import safe_relative

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES = (".zip",)


def archive_kind(path: Path) -> str | None:
    """ "tar" or "zip" from the name, else from the first bytes; None for any other file."""
    name = path.name.lower()
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return "tar"
    return None


def extract(archive: Path, dest: Path) -> None:
    """Unpack `archive` into the existing folder `dest`."""
    kind = archive_kind(archive)
    try:
        if kind == "zip":
            _extract_zip(archive, dest)
        elif kind == "tar":
            _extract_tar(archive, dest)
        else:
            raise SourceError(f"{archive.name} is not a .tar, .tar.gz or .zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise SourceError(f"{archive.name} is not a readable {kind} archive: {e}") from e


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_tar_member(member)
        # The standard library's "data" filter repeats the checks as it writes (defence in depth).
        tar.extractall(dest, members=members, filter="data")


def check_tar_member(member: tarfile.TarInfo) -> None:
    """Raise SourceError unless the member is a file, folder or link that stays inside."""
    where = safe_relative(member.name)
    if (
        member.isdev()
        or member.isfifo()
        or not (member.isfile() or member.isdir() or member.islnk() or member.issym())
    ):
        raise SourceError(
            f"refusing {member.name!r}: archives may hold only files, folders and links"
        )
    if member.issym():
        _check_link(member.name, member.linkname, base=where.parent)
    elif member.islnk():
        # Hard-link targets are named from the archive's root.
        _check_link(member.name, member.linkname, base=PurePosixPath())


def _check_link(name: str, target: str, base: PurePosixPath) -> None:
    if target.startswith("/"):
        raise SourceError(
            f"refusing link {name!r} -> {target!r}: it points outside the destination"
        )
    resolved = os.path.normpath(os.path.join(base.as_posix() or ".", target))
    if resolved == ".." or resolved.startswith("../"):
        raise SourceError(
            f"refusing link {name!r} -> {target!r}: it points outside the destination"
        )


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            safe_relative(info.filename)
            # Unix archivers keep the file type in the high bits; others leave it 0.
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise SourceError(
                    f"refusing {info.filename!r}: zip archives may hold only files and folders"
                )
        for info in infos:
            zf.extract(info, dest)
