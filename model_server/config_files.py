"""TF Serving's text-proto files: model_config_list, batching parameters, monitoring config."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from .core.config import (
    BatchingConfig,
    ModelConfig,
    PolicyKind,
    VersionPolicy,
)
from .proto import serving_config_pb2

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the problem."""


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def parse_model_config(text: str, source: str = "<model config>") -> list[ModelConfig]:
    msg = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if msg.WhichOneof("config") == "custom_model_config":
        raise ConfigError(f"{source}: custom_model_config is not supported")
    return models_from_proto(msg.model_config_list, source)


def models_from_proto(
    config_list: model_server_config_pb2.ModelConfigList, source: str = "<model config>"
) -> list[ModelConfig]:
    models = []
    for entry in config_list.config:
        if not entry.name or not entry.base_path:
            raise ConfigError(f"{source}: every config needs a name and a base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise ConfigError(
                f"{source}: model {entry.name!r} has platform {entry.model_platform!r}; "
                "only 'tensorflow' is served"
            )
        models.append(
            ModelConfig(
                name=entry.name,
                base_path=entry.base_path,
                policy=_policy(entry),
                labels=tuple(sorted((k, int(v)) for k, v in entry.version_labels.items())),
            )
        )
    return models


def _policy(entry: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    policy = entry.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy(PolicyKind.ALL)
    if which == "specific":
        return VersionPolicy(PolicyKind.SPECIFIC, versions=tuple(policy.specific.versions))
    if which == "latest":
        return VersionPolicy(PolicyKind.LATEST, num_versions=policy.latest.num_versions or 1)
    return VersionPolicy()


def load_model_config(path: str) -> list[ModelConfig]:
    return parse_model_config(_read(path), path)


def parse_batching(text: str, source: str = "<batching parameters>") -> BatchingConfig:
    msg = serving_config_pb2.BatchingParameters()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    _refuse_unimplemented(msg, source)
    defaults = BatchingConfig()
    config = BatchingConfig(
        max_batch_size=_int(msg, "max_batch_size", defaults.max_batch_size),
        batch_timeout_micros=_int(msg, "batch_timeout_micros", defaults.batch_timeout_micros),
        max_enqueued_batches=_int(msg, "max_enqueued_batches", defaults.max_enqueued_batches),
        num_batch_threads=_int(msg, "num_batch_threads", defaults.num_batch_threads),
        allowed_batch_sizes=tuple(int(s) for s in msg.allowed_batch_sizes),
    )
    _check_batching(config, source)
    return config


# BatchingParameters fields TF Serving has and this server does not implement, with the reason.
UNSUPPORTED_BATCHING = {
    "pad_variable_length_inputs": "inputs of different lengths are not padded; send equal shapes",
    "enable_large_batch_splitting": "a request larger than max_batch_size is not split",
    "max_execution_batch_size": "batches run whole; use max_batch_size",
    "thread_pool_name": "each model has its own batch threads, named after the model",
}


def _refuse_unimplemented(msg: serving_config_pb2.BatchingParameters, source: str) -> None:
    """A field set in the file changes nothing here, so it is refused by name, not ignored."""
    for field, reason in UNSUPPORTED_BATCHING.items():
        value = getattr(msg, field)
        is_set = msg.HasField(field) if hasattr(value, "DESCRIPTOR") else bool(value)
        if is_set:
            raise ConfigError(f"{source}: {field} is not supported: {reason}")


def _int(msg: serving_config_pb2.BatchingParameters, field: str, default: int) -> int:
    return int(getattr(msg, field).value) if msg.HasField(field) else default


def _check_batching(config: BatchingConfig, source: str) -> None:
    for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
        if getattr(config, field) < 1:
            raise ConfigError(f"{source}: {field} must be at least 1")
    if config.batch_timeout_micros < 0:
        raise ConfigError(f"{source}: batch_timeout_micros must not be negative")
    sizes = config.allowed_batch_sizes
    if sizes:
        if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
            raise ConfigError(f"{source}: allowed_batch_sizes must be increasing and positive")
        if sizes[-1] != config.max_batch_size:
            raise ConfigError(
                f"{source}: the last allowed_batch_sizes entry must equal max_batch_size"
            )


def load_batching(path: str | None) -> BatchingConfig:
    return parse_batching(_read(path), path) if path else BatchingConfig()


def parse_monitoring(text: str, source: str = "<monitoring config>") -> str | None:
    """The Prometheus path to serve, or None when the file disables it."""
    msg = serving_config_pb2.MonitoringConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    prometheus = msg.prometheus_config
    if not prometheus.enable:
        return None
    path = prometheus.path or DEFAULT_METRICS_PATH
    if not path.startswith("/"):
        raise ConfigError(f"{source}: prometheus_config.path must start with '/'")
    return path


def load_monitoring(path: str | None) -> str | None:
    return parse_monitoring(_read(path), path) if path else DEFAULT_METRICS_PATH
