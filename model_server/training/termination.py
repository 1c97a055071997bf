"""The pod's termination message: JSON with the exported model and the final progress on success,
the error line on failure. Kubernetes shows it in the pod status, where the operator reads it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..storage.errors import redact

DEFAULT = Path("/dev/termination-log")
# Kubernetes keeps at most 4096 bytes of a termination message.
LIMIT = 4096


def target(flag: Path | None) -> Path | None:
    if flag is not None:
        return flag
    return DEFAULT if DEFAULT.exists() and os.access(DEFAULT, os.W_OK) else None


def success(path: Path | None, exported: str | None, progress: dict[str, Any]) -> None:
    message: dict[str, Any] = {"progress": progress}
    if exported:
        message["exportedModelUri"] = exported
    _write(path, json.dumps(message, separators=(",", ":")))


def failure(path: Path | None, line: str) -> None:
    line = redact(line)
    print(line, file=sys.stderr, flush=True)
    _write(path, line)


def _write(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        path.write_text(text[:LIMIT] + ("\n" if len(text) < LIMIT else ""))
    except OSError as e:
        print(f"(could not write {path}: {e.strerror})", file=sys.stderr, flush=True)
