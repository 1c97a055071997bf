"""Where a task keeps its BackupAndRestore state, so a restarted task resumes at the epoch it had
finished instead of at 0.

Each task gets its own subfolder (`<dir>/<task>-<index>`): with a shared volume (a PVC mounted in
every pod) the workers never write the same file, and the name is the same after a restart. Keras
3's BackupAndRestore saves weights, optimizer state and the epoch at each epoch's end and restores
at the next fit(); the state is removed only after a successful export."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tensorflow as tf

from .cluster import Cluster

ENV = "MODELSHIP_CHECKPOINT_DIR"


def checkpoint_root(flag: str | None, env: dict[str, str] | os._Environ[str]) -> Path:
    if flag:
        return Path(flag)
    if env.get(ENV):
        return Path(env[ENV])
    return Path(tempfile.gettempdir()) / "modelship-checkpoints"


def task_folder(root: Path, cluster: Cluster) -> Path:
    return root / cluster.name


def callback(folder: Path) -> Any:
    # double_checkpoint: a task killed while writing keeps the previous epoch's state to fall back
    # on. delete_checkpoint=False: the state must outlive fit() until the export has succeeded.
    return tf.keras.callbacks.BackupAndRestore(
        str(folder), save_freq="epoch", double_checkpoint=True, delete_checkpoint=False
    )


def saved_epoch(folder: Path) -> int:
    """The epoch a resumed run starts at (0 when there is no state)."""
    try:
        return int(json.loads((folder / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
