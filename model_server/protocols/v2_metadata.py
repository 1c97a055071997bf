"""Open Inference Protocol metadata, the same over REST and gRPC: the server's and a model's."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from ..core import dtypes
from ..core.types import Signature

SERVER_NAME = "modelship"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "tensorflow_savedmodel"


def server_metadata() -> dict[str, Any]:
    return {
        "name": SERVER_NAME,
        "version": importlib.metadata.version("modelship"),
        "extensions": EXTENSIONS,
    }


def model_metadata(name: str, versions: list[int], signature: Signature) -> dict[str, Any]:
    def tensors(specs: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": key,
                "datatype": dtypes.tf_to_v2(spec.dtype),
                "shape": list(spec.shape) if spec.shape is not None else [-1],
            }
            for key, spec in specs.items()
        ]

    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": tensors(signature.inputs),
        "outputs": tensors(signature.outputs),
    }
