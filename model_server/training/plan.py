"""The user's side of `modelship train`: the function named by `--model module:function`, what it
receives (TrainingContext) and what it returns (TrainingPlan). The contract is described in the
package docstring."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cluster import Cluster


class UserModelError(Exception):
    """`--model` names nothing usable, or the function returned the wrong thing (exit code 2)."""


@dataclass(frozen=True)
class TrainingContext:
    """What the user's function may need to build its model and data."""

    strategy: Any  # tf.distribute.Strategy; the function is already called inside its scope
    global_batch_size: int
    epochs: int
    cluster: Cluster

    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)


@dataclass(frozen=True)
class TrainingPlan:
    """model: a compiled keras.Model (built under the strategy's scope, which the caller holds).
    train: an UNBATCHED tf.data.Dataset of (features, label) pairs; the trainer batches it with
    the global batch size (and repeats it when --steps-per-epoch is given).
    validation: optional, unbatched, the same shape as train."""

    model: Any
    train: Any
    validation: Any = None


ModelFunction = Callable[[TrainingContext], TrainingPlan]


def load_function(target: str) -> ModelFunction:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UserModelError(f"--model {target!r}: expected module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserModelError(f"--model {target!r}: cannot import {module_name}: {e}") from e
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UserModelError(f"--model {target!r}: {module_name} has no {attr}")
    if not callable(obj):
        raise UserModelError(f"--model {target!r}: {attr} is not a function")
    function: ModelFunction = obj
    return function


def check_plan(plan: object, target: str) -> TrainingPlan:
    if not isinstance(plan, TrainingPlan):
        raise UserModelError(
            f"--model {target!r} returned {type(plan).__name__}, not a TrainingPlan"
        )
    if getattr(plan.model, "optimizer", None) is None or not hasattr(plan.model, "fit"):
        raise UserModelError(f"--model {target!r}: the model must be a compiled keras.Model")
    if not hasattr(plan.train, "batch"):
        raise UserModelError(f"--model {target!r}: train must be a tf.data.Dataset")
    return plan
