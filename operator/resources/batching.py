"""The batching parameters file (TF Serving's text proto), shipped to pods in a ConfigMap."""

from __future__ import annotations

from typing import Any

from ..api.modeldeployment import Batching
from .names import ModelDeploymentRef, child_metadata

BATCHING_MOUNT = "/etc/modelship/batching"
BATCHING_KEY = "batching_parameters.txt"
BATCHING_FILE = f"{BATCHING_MOUNT}/{BATCHING_KEY}"


def batching_config_name(ref: ModelDeploymentRef) -> str:
    return f"{ref.name}-batching"


def batching_parameters(batching: Batching) -> str:
    lines = [
        f"max_batch_size {{ value: {batching.max_batch_size} }}",
        f"batch_timeout_micros {{ value: {batching.batch_timeout_micros} }}",
        f"max_enqueued_batches {{ value: {batching.max_enqueued_batches} }}",
        f"num_batch_threads {{ value: {batching.num_batch_threads} }}",
    ]
    lines += [f"allowed_batch_sizes: {size}" for size in batching.allowed_batch_sizes or []]
    return "\n".join(lines) + "\n"


def build_batching_config(ref: ModelDeploymentRef, batching: Batching) -> dict[str, Any]:
    metadata = child_metadata(ref)
    metadata["name"] = batching_config_name(ref)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {BATCHING_KEY: batching_parameters(batching)},
    }
