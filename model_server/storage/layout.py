"""Shaping a fetched tree into a TF Serving base path: numeric version folders of SavedModels."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import SourceError

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
BARE_VERSION = "1"
# Archivers add these beside the real content; they never make a model.
IGNORED = ("__MACOSX", ".DS_Store")


def is_saved_model(folder: Path) -> bool:
    return any((folder / name).is_file() for name in SAVED_MODEL_FILES)


def is_version(path: Path) -> bool:
    return path.is_dir() and path.name.isdigit()


def normalise(root: Path) -> Path:
    """Return the folder inside `root` that is a base path, rearranging in place as needed.

    - a bare SavedModel (saved_model.pb at the top) moves into `1/`;
    - a single wrapping folder with no model of its own (`model/1/…`, as tarballs often have)
      is stepped into;
    - otherwise the top must hold version folders, each with a saved_model.pb.
    """
    base = root
    while not is_saved_model(base) and not _versions(base):
        entries = _entries(base)
        if len(entries) == 1 and entries[0].is_dir():
            base = entries[0]
            continue
        found = ", ".join(sorted(e.name + ("/" if e.is_dir() else "") for e in entries)[:8])
        raise SourceError(
            "no SavedModel found: expected saved_model.pb at the top or in numeric version "
            f"folders (1/, 2/, …); found {found or 'nothing'}"
        )
    if is_saved_model(base):
        _wrap_as_version(base)
        return base
    missing = [v.name for v in _versions(base) if not is_saved_model(v)]
    if missing:
        raise SourceError(f"version folder(s) {', '.join(sorted(missing))} hold no saved_model.pb")
    return base


def versions(base: Path) -> list[str]:
    return sorted((v.name for v in _versions(base)), key=int)


def _entries(folder: Path) -> list[Path]:
    return [e for e in folder.iterdir() if e.name not in IGNORED]


def _versions(folder: Path) -> list[Path]:
    return [e for e in folder.iterdir() if is_version(e)]


def _wrap_as_version(base: Path) -> None:
    """Move everything in `base` into `base/1/` (via a sibling name, as `1` may be taken)."""
    holder = base / ".modelship-version"
    holder.mkdir()
    for entry in list(base.iterdir()):
        if entry != holder:
            shutil.move(entry, holder / entry.name)
    holder.rename(base / BARE_VERSION)
