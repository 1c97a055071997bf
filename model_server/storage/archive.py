"""Recognising and safely unpacking .tar, .tar.gz/.tgz and .zip archives.

Every member is checked before anything is written: absolute names, `..`, links that leave the
destination and device or FIFO files fail the whole archive, so a hostile archive writes nothing.
So do archives that would expand beyond the limits (bombs) and archives that do not end properly
(a tar cut at a member boundary still lists whole members, but lacks its end-of-archive blocks).
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import SourceError
from .limits import Limits
from .paths import safe_relative

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# POSIX ends a tar with two zero-filled 512-byte blocks.
END_OF_TAR = b"\0" * 1024
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


def extract(archive: Path, dest: Path, limits: Limits | None = None) -> None:
    """Unpack `archive` into the existing folder `dest`."""
    kind = archive_kind(archive)
    limits = limits or Limits()
    try:
        if kind == "zip":
            _extract_zip(archive, dest, limits)
        elif kind == "tar":
            _extract_tar(archive, dest, limits)
        else:
            raise SourceError(f"{archive.name} is not a .tar, .tar.gz or .zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise SourceError(f"{archive.name} is not a readable {kind} archive: {e}") from e


def check_expansion(archive: Path, members: int, unpacked: int, limits: Limits) -> None:
    """Refuse an archive whose members' number or declared sizes exceed the limits. The sizes are
    binding: tarfile and zipfile write exactly the declared bytes of each member, or fail."""
    packed = max(archive.stat().st_size, 1)
    if members > limits.max_files:
        raise SourceError(
            f"{archive.name} holds {members} members, over the limit of {limits.max_files} "
            "(--max-files, MODELSHIP_FETCH_MAX_FILES)"
        )
    if unpacked > limits.max_bytes:
        raise SourceError(
            f"{archive.name} would unpack to {unpacked} bytes, over the limit of "
            f"{limits.max_bytes} (--max-bytes, MODELSHIP_FETCH_MAX_BYTES)"
        )
    if unpacked / packed > limits.max_ratio:
        raise SourceError(
            f"{archive.name} would expand {unpacked / packed:.0f} times ({packed} to {unpacked} "
            f"bytes), over the limit of {limits.max_ratio:g} (--max-ratio, "
            "MODELSHIP_FETCH_MAX_RATIO)"
        )


def _extract_tar(archive: Path, dest: Path, limits: Limits) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_tar_member(member)
        unpacked = sum(m.size for m in members if m.isfile())
        check_expansion(archive, len(members), unpacked, limits)
        # The standard library's "data" filter repeats the checks as it writes (defence in depth).
        tar.extractall(dest, members=members, filter="data")
        # Checked after unpacking, where it is a short read forward: before, it would rewind a
        # compressed stream and decompress it once more. The caller's staging folder is removed
        # on failure, so a cut archive still leaves the destination empty.
        _check_tar_end(tar, archive.name, limits)


def _check_tar_end(tar: tarfile.TarFile, name: str, limits: Limits) -> None:
    """The end-of-archive blocks must follow the last member; for a compressed tar the whole
    stream is read too, so a cut or corrupt trailer (gzip's CRC and length) fails here."""
    stream = tar.fileobj
    if stream is None:  # only for archives opened for writing
        raise SourceError(f"{name} is not open for reading")
    stream.seek(tar.offset)
    if stream.read(len(END_OF_TAR)) != END_OF_TAR:
        raise SourceError(f"{name} is truncated: the tar has no end-of-archive blocks")
    after = 0
    while chunk := stream.read(1 << 20):
        after += len(chunk)
        if after > limits.max_bytes:
            raise SourceError(f"{name} has more than {limits.max_bytes} bytes after its end")


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


def _extract_zip(archive: Path, dest: Path, limits: Limits) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        check_expansion(archive, len(infos), sum(info.file_size for info in infos), limits)
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
