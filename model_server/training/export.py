"""Exporting the trained model as a SavedModel version `<output>/<version>`.

Every task calls export(): under MultiWorkerMirroredStrategy saving may run collectives, so all
workers must take part; the ones that do not export write to a throwaway folder."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ..storage.upload import upload


def new_version() -> int:
    """Seconds since the epoch: a later run's export is always newer (TF Serving serves the
    highest number)."""
    return int(time.time())


def version_uri(output: str, version: int) -> str:
    return f"{output.rstrip('/')}/{version}"


def export(model: Any, output: str | None, exporter: bool, version: int) -> str | None:
    """Export the model and, on the exporting task with an output, upload it. Returns the
    version's URI, or None when nothing was uploaded."""
    with tempfile.TemporaryDirectory(prefix="modelship-export-") as tmp:
        local = Path(tmp) / "model"
        model.export(str(local), format="tf_saved_model", verbose=False)
        if not exporter or not output:
            return None
        target = version_uri(output, version)
        upload(local, target)
        return target
