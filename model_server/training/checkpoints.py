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
# BackupAndRestore's files (Keras 3), each with a .bkp copy of the previous epoch's.
WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"


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


def saved_epoch(folder: Path, previous: bool = False) -> int:
    """The epoch a resumed run starts at (0 when there is no state); `previous`: the one before,
    which BackupAndRestore keeps in its .bkp files."""
    name = METADATA + (".bkp" if previous else "")
    try:
        return int(json.loads((folder / name).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def agree(strategy: Any, folder: Path) -> int:
    """Make every MultiWorkerMirroredStrategy worker resume at the same epoch; returns it.

    Workers save at the end of an epoch without waiting for each other, so a restarted job can
    find them one epoch apart (one saved epoch k+1 while its peer died before saving it): they
    would then run different numbers of steps and hang in a collective. All resume at the
    lowest saved epoch; a worker ahead falls back to its previous state (double_checkpoint keeps
    it). If some worker cannot, all start from scratch."""
    local = saved_epoch(folder)
    target = min(_all_workers(strategy, local))
    able = local == target or saved_epoch(folder, previous=True) == target
    if not all(_all_workers(strategy, int(able))):
        print("checkpoints of the workers do not match: starting from epoch 0", flush=True)
        remove(folder)
        return 0
    if local != target:
        for name in (WEIGHTS, METADATA):
            shutil.copyfile(folder / f"{name}.bkp", folder / name)
        print(f"a peer is behind: back to this task's epoch {target} state", flush=True)
    return target


def _all_workers(strategy: Any, value: int) -> list[int]:
    """`value` from every worker (a collective: all workers must call it)."""
    local = tf.constant([value], dtype=tf.int64)
    per_replica = strategy.experimental_distribute_values_from_function(lambda _: local)
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]
