"""Load one SavedModel version and run its signatures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from ..core import dtypes
from ..core.errors import Code, ServingError, invalid
from ..core.types import Signature, Tensors, TensorSpec
from ..runtime import devices, warmup

log = logging.getLogger(__name__)

SERVE_TAG = "serve"


class SavedModelServable:
    """A SavedModel loaded into its own graph and session, like TF Serving's SavedModelBundle.

    Signatures run through Session::MakeCallable, fed by the tensor names in the SignatureDef,
    with far less Python per call than an eager signature function; like TF Serving's
    Session::Run it leaves shape checks to the kernels (so `[1.0, 2.0]` feeds an `x` of
    shape [-1, 1] in the reference models exactly as it does there).
    """

    def __init__(self, path: str, intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
        self.path = path
        meta_graph = _read_meta_graph(path)
        # Signatures whose names start with "__" are internal (e.g. __saved_model_init_op).
        self._defs = {
            name: sig for name, sig in meta_graph.signature_def.items() if not name.startswith("__")
        }
        self._signatures = {name: _signature(name, sig) for name, sig in self._defs.items()}
        self._graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads,
            inter_op_parallelism_threads=inter_op_threads,
        )
        # --gpu_memory_growth, --per_process_gpu_memory_fraction (set before any model loads).
        devices.apply_to_session(config)
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)
        try:
            tf.compat.v1.saved_model.loader.load(self._session, [SERVE_TAG], path)
        except Exception as exc:
            self._session.close()
            raise ServingError(
                Code.FAILED_PRECONDITION, f"cannot load {path}: {_first_line(exc)}"
            ) from exc
        self._callables: dict[tuple[str, tuple[str, ...]], Callable[..., list[Any]]] = {}
        self._lock = threading.Lock()
        warmup.run(self, path)

    @property
    def signatures(self) -> Mapping[str, Signature]:
        return self._signatures

    def signature_def_map(self) -> bytes:
        msg = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in self._defs.items():
            msg.signature_def[name].CopyFrom(sig)
        return bytes(msg.SerializeToString(deterministic=True))

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        keys = tuple(output_keys) if output_keys else tuple(self._defs[signature].outputs)
        fn = self._callable(signature, keys)
        feed = [inputs[key] for key in sorted(inputs)]
        try:
            values = fn(*feed)
        except tf.errors.InvalidArgumentError as exc:
            raise invalid(_first_line(exc)) from exc
        except tf.errors.OpError as exc:
            raise ServingError(Code(exc.error_code), _first_line(exc)) from exc
        except (ValueError, TypeError) as exc:
            raise invalid(_first_line(exc)) from exc
        return {key: _as_array(value) for key, value in zip(keys, values, strict=True)}

    def _callable(self, signature: str, keys: tuple[str, ...]) -> Callable[..., list[Any]]:
        fn = self._callables.get((signature, keys))
        if fn is None:
            sig = self._defs[signature]
            options = config_pb2.CallableOptions(
                feed=[sig.inputs[key].name for key in sorted(sig.inputs)],
                fetch=[sig.outputs[key].name for key in keys],
            )
            with self._lock:
                # Session::MakeCallable, as TF Serving runs signatures: a C++ callable with no
                # Python feed handling (`make_callable` with feeds falls back to `Session.run`).
                fn = self._session._make_callable_from_options(options)
                self._callables[(signature, keys)] = fn
        return fn

    def close(self) -> None:
        self._callables.clear()
        self._session.close()


def load(path: str, intra_op_threads: int = 0, inter_op_threads: int = 0) -> SavedModelServable:
    return SavedModelServable(path, intra_op_threads, inter_op_threads)


def _read_meta_graph(path: str) -> meta_graph_pb2.MetaGraphDef:
    pb = Path(path) / "saved_model.pb"
    if not pb.is_file():
        raise ServingError(Code.NOT_FOUND, f"no saved_model.pb in {path}")
    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString(pb.read_bytes())
    except Exception as exc:
        raise ServingError(Code.DATA_LOSS, f"cannot parse {pb}: {exc}") from exc
    for meta_graph in model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ServingError(Code.NOT_FOUND, f"no MetaGraph tagged {SERVE_TAG!r} in {path}")


def _signature(name: str, sig: meta_graph_pb2.SignatureDef) -> Signature:
    return Signature(
        name=name,
        method_name=sig.method_name,
        inputs={key: _spec(key, info) for key, info in sig.inputs.items()},
        outputs={key: _spec(key, info) for key, info in sig.outputs.items()},
    )


def _spec(key: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(int(dim.size) for dim in info.tensor_shape.dim)
    return TensorSpec(key=key, dtype=dtypes.tf_name_from_enum(info.dtype), shape=shape)


def _as_array(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
