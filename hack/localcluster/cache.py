"""The per-user cache the toolchain build fills: binaries by version, the seed model."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if "MODELSHIP_CACHE" in os.environ:
        return Path(os.environ["MODELSHIP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "modelship"


def default_bin_dir() -> Path:
    """Where hack/toolchain/build.sh caches the binaries."""
    if "MODELSHIP_BIN_DIR" in os.environ:
        return Path(os.environ["MODELSHIP_BIN_DIR"])
    return cache_root() / "bin"
