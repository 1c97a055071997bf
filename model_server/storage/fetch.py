"""One fetch: download into a staging folder inside the destination, unpack, shape into a TF
Serving base path, then move into place, so the destination ends complete or empty. The staging
folder lives inside the destination, not beside it, because the destination is usually a volume's
mount point: renames stay on its filesystem, and the folder itself cannot be replaced."""

from __future__ import annotations

import importlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .archive import archive_kind, extract
from .errors import FetchError, SourceError
from .limits import Limits, Meter
from .uri import Location, parse_uri

# A backend writes what `Location` names into the folder, reporting every chunk to the meter.
Download = Callable[[Location, Path, Meter], None]


def _lazy(module: str) -> Download:
    """A backend imported on first use: boto3 and google-cloud-storage take seconds to import,
    which an http:// or file:// fetch need not pay."""

    def download(location: Location, target: Path, meter: Meter) -> None:
        importlib.import_module(f"{__package__}.{module}").download(location, target, meter)

    return download


BACKENDS: dict[str, Download] = {
    "s3": _lazy("s3"),
    "gs": _lazy("gcs"),
    "http": _lazy("web"),
    "https": _lazy("web"),
    "file": _lazy("local"),
}
STAGING_PREFIX = ".modelship-staging-"
# Written last: its presence says the folder holds a whole model from an earlier fetch, which a
# restarted init container may replace.
MARKER = ".modelship-fetch.json"


@dataclass(frozen=True)
class Result:
    files: int
    bytes: int
    seconds: float
    versions: list[str]


def fetch(
    uri: str,
    dest: Path,
    backends: dict[str, Download] | None = None,
    limits: Limits | None = None,
) -> Result:
    started = time.monotonic()
    limits = limits or Limits()
    location = parse_uri(uri)
    download = (backends or BACKENDS)[location.scheme]
    _prepare(dest)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    try:
        tree = staging / "tree"
        tree.mkdir()
        try:
            download(location, tree, Meter(limits))
            _unpack_single_archive(tree, limits)
            base = layout.normalise(tree)
        except SourceError as e:
            raise FetchError(f"cannot read {location.display}: {e}") from e
        files, size = _count(base)
        versions = layout.versions(base)
        _publish(base, dest)
        (dest / MARKER).write_text(json.dumps({"uri": location.display, "versions": versions}))
    except BaseException:
        _empty(dest)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Result(files, size, time.monotonic() - started, versions)


def _prepare(dest: Path) -> None:
    """Make `dest` an empty folder, clearing only what an earlier fetch left there."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"cannot create {dest}: {e.strerror}") from e
    for entry in dest.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(entry, ignore_errors=True)
    if any(dest.iterdir()):
        if not (dest / MARKER).exists():
            raise FetchError(
                f"{dest} is not empty and was not written by modelship fetch; refusing to overwrite"
            )
        _empty(dest)


def _unpack_single_archive(tree: Path, limits: Limits) -> None:
    """A URI naming one archive file (model.tar.gz, model.zip) stands for its contents."""
    entries = list(tree.iterdir())
    if len(entries) == 1 and entries[0].is_file() and archive_kind(entries[0]):
        # Moved out of the tree, keeping its name for messages; the staging folder holds both.
        holder = tree.parent / "archive"
        holder.mkdir()
        archive = entries[0].rename(holder / entries[0].name)
        extract(archive, tree, limits)
        archive.unlink()


def _publish(base: Path, dest: Path) -> None:
    # Renames within one filesystem (the staging folder lives in dest), so no data is copied.
    for entry in list(base.iterdir()):
        entry.rename(dest / entry.name)


def _empty(dest: Path) -> None:
    for entry in dest.iterdir() if dest.is_dir() else []:
        if entry.name.startswith(STAGING_PREFIX):
            continue  # removed by its owner's finally
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _count(base: Path) -> tuple[int, int]:
    files = [p for p in base.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)
