"""Turning names chosen by a remote store or an archive into paths that stay inside a folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from .errors import SourceError


def safe_relative(name: str) -> PurePosixPath:
    """`name` as a relative path with no `..`, or SourceError. Keys like `a//b/` are tidied."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise SourceError(f"refusing absolute path {name!r}")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceError(f"refusing path {name!r}: it leads outside the destination")
    if not parts:
        raise SourceError(f"refusing empty path {name!r}")
    return PurePosixPath(*parts)


def safe_join(root: Path, name: str) -> Path:
    return root.joinpath(*safe_relative(name).parts)


def under_prefix(key: str, prefix: str) -> str | None:
    """The path of an object key below a bucket prefix, or None when the key is not below it.

    `prefix` is a folder (`m` matches `m/…`, never `m2/…`) or names one object exactly, which
    then keeps its file name. Folder markers (keys ending in `/`) hold no data: None.
    """
    if key.endswith("/"):
        return None
    if not prefix:
        return key
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    return None
