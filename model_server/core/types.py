"""What the data plane knows about a servable: its signatures and their tensors (no TensorFlow)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Protocol

import numpy as np

Tensors = dict[str, np.ndarray]

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """An input or output: its key, DT_* dtype and shape (-1: any size; None: any rank)."""

    key: str
    dtype: str
    shape: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]

    @functools.cached_property
    def batchable(self) -> bool:
        """Every input and output has a leading batch dimension of unknown size."""
        return all(
            spec.shape is not None and len(spec.shape) > 0 and spec.shape[0] == -1
            for spec in (*self.inputs.values(), *self.outputs.values())
        )


class Servable(Protocol):
    """A loaded model version. The runtime layer implements it; nothing else touches TensorFlow."""

    @property
    def signatures(self) -> Mapping[str, Signature]: ...

    def signature_def_map(self) -> bytes:
        """The serialized tensorflow.serving.SignatureDefMap, for metadata replies."""
        ...

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        """Run one signature on already-validated inputs. Blocking; call off the event loop."""
        ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The version a request names (or the latest), found among those AVAILABLE."""

    name: str
    version: int
    servable: Servable


class Loader(Protocol):
    def __call__(self, path: str) -> Servable: ...
