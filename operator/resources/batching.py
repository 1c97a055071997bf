"""The batching parameters file (TF Serving's text proto), shipped to pods in a ConfigMap."""

from __future__ import annotations

from typing import Any

from modelship_server.batching_file import format_batching
from modelship_server.core.config import BatchingConfig

from ..api.modeldeployment import Batching
from .names import ModelDeploymentRef, child_metadata

BATCHING_MOUNT = "/etc/modelship/batching"
BATCHING_KEY = "batching_parameters.txt"
BATCHING_FILE = f"{BATCHING_MOUNT}/{BATCHING_KEY}"


def batching_config_name(ref: ModelDeploymentRef) -> str:
    return f"{ref.name}-batching"


def batching_config(batching: Batching) -> BatchingConfig:
    """The spec's batching as the server's own settings type."""
    return BatchingConfig(
        max_batch_size=batching.max_batch_size,
        batch_timeout_micros=batching.batch_timeout_micros,
        max_enqueued_batches=batching.max_enqueued_batches,
        num_batch_threads=batching.num_batch_threads,
        allowed_batch_sizes=tuple(batching.allowed_batch_sizes or ()),
    )


def batching_parameters(batching: Batching) -> str:
    """The file's text, written by the module the server's own parser pairs with."""
    text: str = format_batching(batching_config(batching))
    return text


def build_batching_config(ref: ModelDeploymentRef, batching: Batching) -> dict[str, Any]:
    metadata = child_metadata(ref)
    metadata["name"] = batching_config_name(ref)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {BATCHING_KEY: batching_parameters(batching)},
    }
