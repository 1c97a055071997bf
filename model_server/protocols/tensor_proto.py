"""numpy <-> tensorflow.TensorProto without TensorFlow (as tf.make_ndarray / make_tensor_proto)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import dtypes, limits
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
# The dtype each repeated value field holds on the wire, before the range-checked cast.
_FIELD_DTYPE: dict[str, np.dtype[Any]] = {
    "float_val": np.dtype(np.float32),
    "double_val": np.dtype(np.float64),
    "int_val": np.dtype(np.int64),  # int32 on the wire; int64 so nothing wraps before the check
    "int64_val": np.dtype(np.int64),
    "bool_val": np.dtype(np.bool_),
    "half_val": np.dtype(np.int64),
    "uint32_val": np.dtype(np.uint32),
    "uint64_val": np.dtype(np.uint64),
}


def _declared(proto: Any, key: str) -> tuple[str, np.dtype[Any], tuple[int, ...], int]:
    """The proto's DT_* name, numpy dtype, dims (checked against the tensor limits) and the
    bytes the decoded tensor will take; nothing is allocated."""
    name = dtypes.tf_name_from_enum(proto.dtype)
    dtype = dtypes.numpy_dtype(name)
    itemsize = limits.OBJECT_ITEMSIZE if name == "DT_STRING" else dtype.itemsize
    dims = limits.check_shape(key, [d.size for d in proto.tensor_shape.dim], itemsize)
    return name, dtype, dims, limits.element_count(dims) * itemsize


def declared_bytes(proto: Any, key: str = "tensor") -> int:
    """Bytes the decoded tensor will take (after its shape passed the limits)."""
    return _declared(proto, key)[3]


def to_numpy(proto: Any, key: str = "tensor") -> np.ndarray:
    """A TensorProto as an array; rejects protos whose data and shape disagree."""
    name, dtype, dims, _ = _declared(proto, key)
    size = limits.element_count(dims)
    if proto.tensor_content and name != "DT_STRING":
        if len(proto.tensor_content) != size * dtype.itemsize:
            raise invalid(f"input {key!r}: tensor_content does not match shape {list(dims)}")
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(dims)
    field = _VALUE_FIELD[name]
    values = getattr(proto, field)
    if name == "DT_STRING":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    elif name == "DT_HALF":
        wide = np.asarray(values, dtype=np.int64)
        array = dtypes.cast_in_range(key, wide, np.dtype(np.uint16), "DT_HALF bits")
        array = array.view(np.float16)
    else:
        wide = np.asarray(values, dtype=_FIELD_DTYPE[field])
        array = dtypes.cast_in_range(key, wide, dtype, name)
    if array.size == size:
        return array.reshape(dims)
    if array.size == 1:  # TensorFlow fills a tensor from a single value
        return np.full(dims, array[0], dtype=array.dtype)
    if array.size == 0:
        return np.zeros(dims, dtype=dtype) if name != "DT_STRING" else np.full(dims, b"", object)
    raise invalid(f"input {key!r}: {array.size} values do not fill shape {list(dims)}")


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
