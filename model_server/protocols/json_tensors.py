"""JSON values <-> numpy tensors, with TF Serving's {"b64": ...} convention for binary strings."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from ..core import dtypes
from ..core.errors import invalid
from . import json_body

B64_KEY = "b64"


def is_b64(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and B64_KEY in value


def decode_b64(value: dict[str, Any], max_bytes: int | None = None) -> bytes:
    text = value[B64_KEY]
    if not isinstance(text, str):
        raise invalid('"b64" value must be a string')
    if max_bytes is not None and len(text) > (max_bytes * 4) // 3 + 4:
        raise invalid(f"b64 value larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("invalid base64 in b64 value") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise invalid(f"b64 value larger than {max_bytes} bytes")
    return data


def float_array(value: Any, dtype: np.dtype[Any], nulls: bool = True) -> np.ndarray | None:
    """Numbers straight to a float dtype in one pass; None: convert them the checked way.

    Lists go straight to the input's dtype: going through float64 and casting costs a second
    pass, and numpy drops the GIL for passes over more than 500 elements, which under load means
    waiting for it back from the batch threads. For the same reason the NaN check (a NaN here
    was a JSON null, to be refused, not computed on) runs only if the value may hold a null.
    Arrays json_body already parsed are cast by json_body.as_dtype.
    """
    if isinstance(value, np.ndarray):  # parsed by json_body: numbers only, never a null
        return json_body.as_dtype(value, dtype)
    try:
        array = np.array(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return None
    return None if nulls and np.isnan(array).any() else array


def to_array(
    key: str, value: Any, tf_dtype: str, max_b64: int | None = None, nulls: bool = True
) -> np.ndarray:
    """One input's JSON value as an array of the signature dtype's family (cast later).

    nulls: the value may hold a JSON null (see json_body.Parsed).
    """
    if dtypes.is_string(tf_dtype):
        return _string_array(key, value, max_b64)
    target = dtypes.numpy_dtype(tf_dtype)
    check_json_numbers(key, value, tf_dtype)
    if target.kind == "f":
        fast = float_array(value, target, nulls)
        if fast is not None:
            return fast
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise invalid(f"input {key!r}: values do not form a regular tensor") from None
    if array.dtype.kind not in "biuf":
        raise invalid(f"input {key!r}: expected numbers for {tf_dtype}")
    return array


def check_json_numbers(key: str, value: Any, tf_dtype: str) -> None:
    """Refuse what TF Serving refuses: only true/false for DT_BOOL, only numbers otherwise.

    numpy alone would read true as 1.0 and "1.5" as 1.5 for a float input. Arrays json_body
    parsed hold numbers only; the lists left to orjson are walked, without recursion.
    """
    want_bool = dtypes.numpy_dtype(tf_dtype).kind == "b"
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is list:
            stack.extend(item)
        elif kind is np.ndarray:
            if (item.dtype.kind == "b") != want_bool:
                raise _wrong_type(key, tf_dtype, want_bool, "numbers")
        elif (kind is bool) != want_bool or kind not in (bool, int, float):
            raise _wrong_type(key, tf_dtype, want_bool, _json_name(item))


def _wrong_type(key: str, tf_dtype: str, want_bool: bool, got: str) -> Exception:
    wanted = "true or false" if want_bool else "numbers"
    return invalid(f"input {key!r} expects {wanted} for {tf_dtype}, got {got}")


def _json_name(item: Any) -> str:
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "a boolean"
    if isinstance(item, str):
        return "a string"
    if isinstance(item, dict):
        return "an object"
    return "a number"


def _string_array(key: str, value: Any, max_b64: int | None) -> np.ndarray:
    flat: list[bytes] = []
    shape = _walk_strings(key, value, flat, 0, max_b64)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def _walk_strings(
    key: str, value: Any, out: list[bytes], depth: int, max_b64: int | None
) -> tuple[int, ...]:
    if depth > 32:
        raise invalid(f"input {key!r}: nested too deeply")
    if isinstance(value, str):
        out.append(value.encode())
        return ()
    if is_b64(value):
        out.append(decode_b64(value, max_b64))
        return ()
    if isinstance(value, list):
        shapes = {_walk_strings(key, item, out, depth + 1, max_b64) for item in value}
        if len(shapes) > 1:
            raise invalid(f"input {key!r}: values do not form a regular tensor")
        inner = shapes.pop() if shapes else ()
        return (len(value), *inner)
    raise invalid(f'input {key!r}: expected strings or {{"b64": ...}} values')


def to_json(key: str, array: np.ndarray) -> Any:
    """A tensor as JSON-ready data: numeric arrays stay numpy (orjson writes them natively)."""
    if array.dtype.kind == "O" or array.dtype.kind in "SU":
        binary = key.endswith("_bytes")
        return _strings_to_json(array.tolist(), binary)
    if array.dtype.kind == "f" and array.dtype.itemsize == 2:
        array = array.astype(np.float32)  # orjson has no float16
    return np.ascontiguousarray(array) if array.ndim else array.item()


def _strings_to_json(value: Any, binary: bool) -> Any:
    if isinstance(value, list):
        return [_strings_to_json(item, binary) for item in value]
    if isinstance(value, str):
        value = value.encode()
    if not binary:
        try:
            return value.decode()
        except UnicodeDecodeError:
            pass  # not text: send it as base64 rather than corrupt it
    return {B64_KEY: base64.b64encode(value).decode()}
