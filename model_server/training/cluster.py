"""Which part of a distributed job this process is, from TF_CONFIG, and the tf.distribute strategy
that follows from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

ROLES = ("chief", "worker", "ps", "evaluator")


class Mode(Enum):
    SINGLE = "single"  # no TF_CONFIG (or a one-task cluster): the default strategy
    MULTI_WORKER = "multi-worker"  # chief/workers, no ps: MultiWorkerMirroredStrategy
    PARAMETER_SERVER = "parameter-server"  # ps in the cluster: the chief coordinates


class ConfigError(ValueError):
    """TF_CONFIG cannot be used; the text says why."""


@dataclass(frozen=True)
class Cluster:
    mode: Mode
    task_type: str = ""
    task_index: int = 0
    roles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def exporter(self) -> bool:
        """The one task that serves progress and exports: the chief, else worker 0, or the single
        process. (The brief's success rule: the chief Job, else worker index 0.)"""
        if self.mode is Mode.SINGLE:
            return True
        if "chief" in self.roles:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def name(self) -> str:
        """A stable name for this task (its checkpoint subfolder): the same after a restart."""
        return "single" if self.mode is Mode.SINGLE else f"{self.task_type}-{self.task_index}"


def from_tf_config(raw: str | None) -> Cluster:
    if not raw or not raw.strip():
        return Cluster(Mode.SINGLE)
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not JSON: {e}") from e
    if not isinstance(config, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    roles = _roles(config.get("cluster") or {})
    task = config.get("task") or {}
    if not isinstance(task, dict):
        raise ConfigError("TF_CONFIG 'task' must be an object")
    task_type = str(task.get("type") or "")
    try:
        index = int(task.get("index", 0))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"TF_CONFIG task index {task.get('index')!r} is not a number") from e
    if not roles and not task_type:
        return Cluster(Mode.SINGLE)
    if task_type not in ROLES:
        raise ConfigError(f"TF_CONFIG task type {task_type!r} is not one of {', '.join(ROLES)}")
    # The evaluator is not a member of the cluster (TF's convention); every other task is.
    if task_type != "evaluator" and not 0 <= index < len(roles.get(task_type, [])):
        raise ConfigError(f"TF_CONFIG task {task_type}:{index} is not in the cluster")
    if "ps" in roles:
        if "chief" not in roles:
            raise ConfigError("a parameter-server cluster needs a chief to coordinate")
        mode = Mode.PARAMETER_SERVER
    elif sum(len(v) for v in roles.values()) <= 1 and task_type != "evaluator":
        mode = Mode.SINGLE  # one worker alone: no collectives to set up
    else:
        mode = Mode.MULTI_WORKER
    return Cluster(mode, task_type, index, roles)


def _roles(cluster: Any) -> dict[str, list[str]]:
    if not isinstance(cluster, dict):
        raise ConfigError("TF_CONFIG 'cluster' must be an object of role: [addresses]")
    roles: dict[str, list[str]] = {}
    for role, addresses in cluster.items():
        if role not in ROLES or role == "evaluator":
            raise ConfigError(f"TF_CONFIG cluster role {role!r} is not chief, worker or ps")
        listed = addresses
        if isinstance(listed, dict):  # TF also accepts {index: address}
            listed = [listed[k] for k in sorted(listed, key=int)]
        if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
            raise ConfigError(f"TF_CONFIG cluster role {role!r} must list host:port strings")
        if listed:
            roles[role] = list(listed)
    return roles


def strategy_for(cluster: Cluster) -> Any:
    """The strategy for the coordinating or training task. TensorFlow reads TF_CONFIG itself; the
    Cluster only decides which strategy to build."""
    import tensorflow as tf  # noqa: PLC0415 - parsing TF_CONFIG needs no TF

    if cluster.mode is Mode.MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cluster.mode is Mode.PARAMETER_SERVER:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.experimental.ParameterServerStrategy(resolver)
    return tf.distribute.get_strategy()
