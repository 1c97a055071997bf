"""Check and coerce request tensors against a signature before they reach the runtime."""

from __future__ import annotations

import numpy as np

from ..core import dtypes
from ..core.errors import invalid
from ..core.types import Signature, Tensors


def check_inputs(signature: Signature, inputs: Tensors) -> Tensors:
    """Return inputs cast to the signature's dtypes; raise INVALID_ARGUMENT on a mismatch."""
    unknown = [key for key in inputs if key not in signature.inputs]
    if unknown:
        raise invalid(f"unknown input(s) {sorted(unknown)}; expected {sorted(signature.inputs)}")
    missing = [key for key in signature.inputs if key not in inputs]
    if missing:
        raise invalid(f"missing input(s) {sorted(missing)}; expected {sorted(signature.inputs)}")
    out: Tensors = {}
    for key, spec in signature.inputs.items():
        array = inputs[key]
        out[key] = _cast(key, array, spec.dtype)
        _check_shape(key, out[key].shape, spec.shape)
    return out


def check_output_keys(signature: Signature, keys: list[str] | None) -> list[str] | None:
    if not keys:
        return None
    if not all(isinstance(key, str) for key in keys):
        raise invalid("output names must be strings")
    unknown = [key for key in keys if key not in signature.outputs]
    if unknown:
        raise invalid(f"unknown output(s) {sorted(unknown)}; expected {sorted(signature.outputs)}")
    return keys


def _cast(key: str, array: np.ndarray, tf_dtype: str) -> np.ndarray:
    target = dtypes.numpy_dtype(tf_dtype)
    if array.dtype == target:
        return array
    if dtypes.is_string(tf_dtype):
        if array.dtype.kind in "OSU" or array.size == 0:
            return array.astype(object)
        raise invalid(f"input {key!r} expects strings, got {array.dtype}")
    if array.dtype.kind in "OSU":
        raise invalid(f"input {key!r} expects {tf_dtype}, got strings")
    # JSON numbers like 1.5 must not be silently truncated into integer inputs.
    if (
        target.kind in "iu"
        and array.dtype.kind == "f"
        and (not np.all(np.isfinite(array)) or not np.all(np.floor(array) == array))
    ):
        raise invalid(f"input {key!r} expects {tf_dtype}, got non-integer values")
    if target.kind == "b" and array.dtype.kind != "b":
        raise invalid(f"input {key!r} expects DT_BOOL, got {array.dtype}")
    return dtypes.cast_in_range(key, array, target, tf_dtype)


def _check_shape(key: str, shape: tuple[int, ...], expected: tuple[int, ...] | None) -> None:
    # Like TF Serving, a different rank is left to the model's kernels to accept or refuse (the
    # reference models take [N] for [-1, 1]); known dimensions of the same rank must match.
    if expected is None or len(shape) != len(expected):
        return
    for got, want in zip(shape, expected, strict=True):
        if want >= 0 and got != want:
            raise invalid(f"input {key!r} has shape {list(shape)}, expected {list(expected)}")
