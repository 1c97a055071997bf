"""GPU memory for this process's TensorFlow: memory growth and a per-process fraction.

TensorFlow makes one memory allocator per GPU per process, with the options of whatever opens
the GPU first (a model's session or the eager context); sessions opened later share it and
their own GPU options are ignored. So `configure` runs once, before any model loads: it sets
memory growth on `tf.config` (the eager context), keeps the options for every model's session
(`apply_to_session`, which `savedmodel` calls), and opens the GPUs once with them, so they are
the allocator's whichever opens a GPU next.

`--per_process_gpu_memory_fraction` is TF Serving's flag with TF Serving's meaning: the
`per_process_gpu_memory_fraction` of the sessions' `GPUOptions` (0: TensorFlow decides, nearly
all of the memory). `--gpu_memory_growth` is `allow_growth`: memory is taken as models need it,
up to the fraction when one is set, so several processes (or models) can share a GPU.

This module imports TensorFlow only inside `configure`: the command line builds `GpuMemory`
before TensorFlow is imported, so a bad flag fails at once.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GpuMemory:
    growth: bool = False
    fraction: float = 0.0  # of each GPU's memory; 0: TensorFlow's default

    @property
    def is_default(self) -> bool:
        return not self.growth and not self.fraction


class _Applied:
    """What `configure` set: process-wide, as TensorFlow's GPU allocator is."""

    memory = GpuMemory()


def current() -> GpuMemory:
    """The settings `configure` applied in this process (defaults before it runs)."""
    return _Applied.memory


def apply_to_session(config: Any) -> None:
    """Put the process's GPU memory settings into a session's ConfigProto."""
    memory = _Applied.memory
    if memory.growth:
        config.gpu_options.allow_growth = True
    if memory.fraction:
        config.gpu_options.per_process_gpu_memory_fraction = memory.fraction


def configure(memory: GpuMemory, tf: Any = None) -> list[str]:
    """Apply `memory` to this process's GPUs before any model loads; the GPUs TensorFlow sees.

    `tf` is the tensorflow module (a stand-in in tests). Call it once, before the first model
    session: TensorFlow refuses to change memory growth once a GPU is open.
    """
    _Applied.memory = memory
    if tf is None:
        # Seconds to import, so not at the top: the command line imports this module.
        tf = importlib.import_module("tensorflow")
    gpus = list(tf.config.list_physical_devices("GPU"))
    names = [str(getattr(gpu, "name", gpu)) for gpu in gpus]
    if not gpus:
        log.warning(
            "a GPU is visible to this process but not to TensorFlow (are the CUDA libraries "
            "installed? pip's tensorflow[and-cuda]): models run on the CPU%s",
            "" if memory.is_default else "; the GPU memory flags change nothing",
        )
        return names
    if memory.growth:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    if not memory.is_default:
        # Open the GPUs now, with these options: the allocator keeps the first opener's.
        config = tf.compat.v1.ConfigProto()
        apply_to_session(config)
        tf.compat.v1.Session(config=config).close()
    log.info(
        "GPUs %s: memory growth %s, memory fraction %s",
        ", ".join(names),
        "on" if memory.growth else "off",
        memory.fraction or "TensorFlow's default",
    )
    return names
