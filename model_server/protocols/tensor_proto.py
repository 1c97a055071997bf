"""numpy <-> tensorflow.TensorProto without TensorFlow (as tf.make_ndarray / make_tensor_proto)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import dtypes
from ..core.errors import invalid

# DT_* name -> the repeated field holding its values when tensor_content is empty.
_VALUE_FIELD = {
    "DT_FLOAT": "float_val",
    "DT_DOUBLE": "double_val",
    "DT_INT32": "int_val",
    "DT_INT16": "int_val",
    "DT_INT8": "int_val",
    "DT_UINT8": "int_val",
    "DT_UINT16": "int_val",
    "DT_INT64": "int64_val",
    "DT_BOOL": "bool_val",
    "DT_STRING": "string_val",
    "DT_HALF": "half_val",
    "DT_UINT32": "uint32_val",
    "DT_UINT64": "uint64_val",
}
MAX_ELEMENTS = 1 << 28


def to_numpy(proto: Any, key: str = "tensor") -> np.ndarray:
    """A TensorProto as an array; rejects protos whose data and shape disagree."""
    name = dtypes.tf_name_from_enum(proto.dtype)
    dims = [int(d.size) for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input {key!r}: negative dimension in shape {dims}")
    size = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if size > MAX_ELEMENTS:
        raise invalid(f"input {key!r}: tensor of {size} elements is too large")
    dtype = dtypes.numpy_dtype(name)
    if proto.tensor_content and name != "DT_STRING":
        if len(proto.tensor_content) != size * dtype.itemsize:
            raise invalid(f"input {key!r}: tensor_content does not match shape {dims}")
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(dims)
    values = getattr(proto, _VALUE_FIELD[name])
    if name == "DT_STRING":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    elif name == "DT_HALF":
        array = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        array = np.asarray(values, dtype=dtype)
    if array.size == size:
        return array.reshape(dims)
    if array.size == 1:  # TensorFlow fills a tensor from a single value
        return np.full(dims, array[0], dtype=array.dtype)
    if array.size == 0:
        return np.zeros(dims, dtype=dtype) if name != "DT_STRING" else np.full(dims, b"", object)
    raise invalid(f"input {key!r}: {array.size} values do not fill shape {dims}")


def from_numpy(array: np.ndarray, proto: Any) -> None:
    """Fill a (new) TensorProto from an array: numbers as raw tensor_content, strings as values."""
    name = dtypes.tf_name_from_numpy(array.dtype)
    proto.dtype = dtypes.tf_enum(name)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if name == "DT_STRING":
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1).tolist()
        )
    else:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
