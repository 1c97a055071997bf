"""Open Inference Protocol tensors: JSON `data`, raw little-endian bytes, and BYTES framing."""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import numpy as np

from ..core import dtypes, limits
from ..core.errors import invalid
from . import json_body
from .json_tensors import check_json_numbers, float_array

try:
    from . import _v2inputs  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the extension is optional at install time
    _v2inputs = None

# _v2inputs' type codes.
_CODES = {code: np.dtype(code) for code in "fdiq"}
_INT62 = 1 << 62


@dataclasses.dataclass(frozen=True, slots=True)
class V2Type:
    """One Open Inference Protocol datatype, looked up once per request input."""

    name: str  # "FP32"
    tf_name: str  # "DT_FLOAT"
    dtype: np.dtype[Any]  # object for BYTES
    itemsize: int  # bytes per element once decoded (BYTES: its slot in an object array)


_V2_TYPES: dict[str, V2Type] = {}


def v2_type(key: str, datatype: Any) -> V2Type:
    """The datatype an input declares; INVALID_ARGUMENT, naming the input, for anything else."""
    found = _V2_TYPES.get(datatype) if type(datatype) is str else None
    if found is not None:
        return found
    if not isinstance(datatype, str):
        raise invalid(f"input {key!r}: datatype must be a string")
    tf_name = dtypes.v2_to_tf(datatype)  # raises for an unknown name
    dtype = dtypes.numpy_dtype(tf_name)
    size = limits.OBJECT_ITEMSIZE if datatype == "BYTES" else dtype.itemsize
    found = _V2_TYPES[datatype] = V2Type(datatype, tf_name, dtype, size)
    return found


def decode_common(items: Any) -> dict[str, np.ndarray] | None:
    """Inputs in the common form (name, datatype, shape and a flat list or parsed array of
    numbers, within the limits) decoded in one call of the C extension; None: decode them the
    general way (v2_type, declared_shape, from_json), which accepts or names what is wrong.

    It accepts only what the general way accepts, with the same values (see _v2inputs.c).
    """
    if _v2inputs is None:
        return None
    bounds = limits.current()
    # The extension counts in int64: limits set higher than any tensor could be pass as 2^62
    # (what it declines then, the general path still decodes against the real limit).
    decoded = _v2inputs.decode(
        items, min(bounds.max_elements, _INT62), min(bounds.max_bytes, _INT62), np.ndarray
    )
    if decoded is None:
        return None
    return {
        name: np.frombuffer(buffer, dtype=_CODES[code]).reshape(shape)
        for name, code, shape, buffer in decoded
    }


def declared_shape(
    key: str, shape: Any, datatype: V2Type | None = None
) -> tuple[tuple[int, ...], int]:
    """The declared shape and the bytes it takes once decoded, checked against the tensor limits
    before anything is allocated.

    Without a datatype only the element limit applies (its bytes are not known yet).
    """
    size = 1 if datatype is None else datatype.itemsize
    elements = 1
    # Exact types in one pass first (cheaper than isinstance per dimension); a bool or an int
    # subclass leaves it for the full check.
    if type(shape) is list or type(shape) is tuple:
        for d in shape:
            if type(d) is not int or d < 0:
                break
            elements *= d
        else:
            bounds = limits.current()
            if elements <= bounds.max_elements and elements * size <= bounds.max_bytes:
                return tuple(shape), elements * size  # check_shape would agree
            return limits.check_shape(key, shape, size), elements * size  # raises, naming why
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise invalid(f"input {key!r}: shape must be a list of non-negative integers")
    dims = limits.check_shape(key, shape, size)  # raises over the limits
    return dims, math.prod(dims) * size


def from_raw(
    key: str, datatype: V2Type, shape: tuple[int, ...], raw: bytes | memoryview
) -> np.ndarray:
    """Raw tensor bytes (binary extension / raw_input_contents) as an array of `shape`."""
    size = math.prod(shape)
    if datatype.name == "BYTES":
        items = _unframe(key, raw)
        if len(items) != size:
            raise invalid(f"input {key!r}: {len(items)} BYTES elements for shape {list(shape)}")
        array = np.empty(size, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = datatype.dtype.newbyteorder("<")
    if len(raw) != size * dtype.itemsize:
        raise invalid(
            f"input {key!r}: {len(raw)} bytes do not hold {datatype.name} of shape {list(shape)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def from_json(
    key: str,
    datatype: V2Type,
    shape: tuple[int, ...],
    data: Any,
    nulls: bool = True,
    typed: bool = False,
) -> np.ndarray:
    """`data` as an array of `shape`; typed: the values come from a typed protobuf field.

    `shape` comes from declared_shape: Python ints within the limits.
    """
    dtype = datatype.dtype
    if dtype.kind == "f" and not typed and type(data) is np.ndarray and data.dtype.kind in "if":
        # Numbers json_body parsed already (int64 or float64, never a null): only the cast
        # to the input's dtype is left.
        array = json_body.as_dtype(data, dtype)
    elif datatype.name == "BYTES":
        flat = _flatten_strings(key, data)
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        if not typed:
            check_json_numbers(key, data, datatype.tf_name)
        fast = float_array(data, dtype, nulls) if dtype.kind == "f" else None
        try:
            array = fast if fast is not None else np.asarray(data)
        except (ValueError, TypeError, OverflowError):
            raise invalid(f"input {key!r}: data is not a regular array") from None
        if array.dtype.kind not in "biuf":
            raise invalid(f"input {key!r}: data must be numbers for {datatype.name}")
        if dtype.kind in "iu" and array.dtype.kind == "f" and array.size:  # [] reads as floats
            raise invalid(f"input {key!r}: non-integer data for {datatype.name}")
        if array.dtype != dtype:  # already the input's dtype (floats): no copy
            array = dtypes.cast_in_range(key, array, dtype, datatype.name)
    if array.size != math.prod(shape):
        raise invalid(f"input {key!r}: {array.size} elements for shape {list(shape)}")
    return array.reshape(shape)


def _flatten_strings(key: str, data: Any) -> list[bytes]:
    out: list[bytes] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            out.append(item.encode())
        elif isinstance(item, bytes):
            out.append(item)
        else:
            raise invalid(f"input {key!r}: BYTES data must be strings")
    return out


def _unframe(key: str, raw: bytes | memoryview) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise invalid(f"input {key!r}: truncated BYTES length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise invalid(f"input {key!r}: BYTES element overruns the buffer")
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    return items


def to_raw(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OSU":
        parts = []
        for item in array.reshape(-1).tolist():
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


_DATATYPES: dict[np.dtype[Any], str] = {}


def datatype(array: np.ndarray) -> str:
    name = _DATATYPES.get(array.dtype)
    if name is None:
        name = dtypes.tf_to_v2(dtypes.tf_name_from_numpy(array.dtype))
        if array.dtype.kind not in "OSU":  # string dtypes vary in length: not cached
            _DATATYPES[array.dtype] = name
    return name


def to_json_data(array: np.ndarray) -> Any:
    """Flattened row-major data, as the protocol's JSON form prefers."""
    if array.dtype.kind in "OSU":
        return [
            (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
            for v in array.reshape(-1).tolist()
        ]
    if array.dtype.char == "e":  # float16: orjson has none
        array = array.astype(np.float32)
    return array.ravel()  # a view when contiguous already, else a C-order copy
