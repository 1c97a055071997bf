"""Tensor element types by their TensorFlow (DT_*) and Open Inference Protocol names, as numpy.

Kept free of TensorFlow so the protocol adapters can use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import invalid

# DT_* name -> (DataType enum number in types.proto, numpy dtype)
_TF: dict[str, tuple[int, np.dtype[np.generic]]] = {
    "DT_FLOAT": (1, np.dtype(np.float32)),
    "DT_DOUBLE": (2, np.dtype(np.float64)),
    "DT_INT32": (3, np.dtype(np.int32)),
    "DT_UINT8": (4, np.dtype(np.uint8)),
    "DT_INT16": (5, np.dtype(np.int16)),
    "DT_INT8": (6, np.dtype(np.int8)),
    "DT_STRING": (7, np.dtype(object)),
    "DT_INT64": (9, np.dtype(np.int64)),
    "DT_BOOL": (10, np.dtype(np.bool_)),
    "DT_UINT16": (17, np.dtype(np.uint16)),
    "DT_HALF": (19, np.dtype(np.float16)),
    "DT_UINT32": (22, np.dtype(np.uint32)),
    "DT_UINT64": (23, np.dtype(np.uint64)),
}
_TF_BY_ENUM = {num: name for name, (num, _) in _TF.items()}

# Open Inference Protocol datatype <-> DT_* name
_V2_TO_TF = {
    "BOOL": "DT_BOOL",
    "UINT8": "DT_UINT8",
    "UINT16": "DT_UINT16",
    "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64",
    "INT8": "DT_INT8",
    "INT16": "DT_INT16",
    "INT32": "DT_INT32",
    "INT64": "DT_INT64",
    "FP16": "DT_HALF",
    "FP32": "DT_FLOAT",
    "FP64": "DT_DOUBLE",
    "BYTES": "DT_STRING",
}
_TF_TO_V2 = {tf: v2 for v2, tf in _V2_TO_TF.items()}


def numpy_dtype(tf_name: str) -> np.dtype[np.generic]:
    try:
        return _TF[tf_name][1]
    except KeyError:
        raise invalid(f"unsupported dtype {tf_name}") from None


def tf_enum(tf_name: str) -> int:
    return _TF[tf_name][0]


def tf_name_from_enum(num: int) -> str:
    try:
        return _TF_BY_ENUM[num]
    except KeyError:
        raise invalid(f"unsupported dtype enum {num}") from None


def tf_name_from_numpy(dtype: np.dtype[np.generic]) -> str:
    if dtype.kind in "OSU":
        return "DT_STRING"
    for name, (_, np_dtype) in _TF.items():
        if np_dtype == dtype:
            return name
    raise invalid(f"unsupported numpy dtype {dtype}")


def v2_to_tf(v2_name: str) -> str:
    try:
        return _V2_TO_TF[v2_name]
    except KeyError:
        raise invalid(f"unsupported datatype {v2_name!r}") from None


def tf_to_v2(tf_name: str) -> str:
    return _TF_TO_V2.get(tf_name, tf_name.removeprefix("DT_"))


def is_string(tf_name: str) -> bool:
    return tf_name == "DT_STRING"


def cast_in_range(key: str, array: np.ndarray, target: np.dtype[Any], type_name: str) -> np.ndarray:
    """Integers cast to `target` after checking every value fits; numpy's cast would wrap them.

    300 for an INT8 input is refused, never sent on as 44; -1 for UINT8, never as 255.
    """
    if target.kind in "iu" and array.dtype.kind in "iuf" and array.size:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise invalid(f"input {key!r}: non-finite value for {type_name}")
        info = np.iinfo(target)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise invalid(
                f"input {key!r}: value {bad} is out of range for {type_name} "
                f"[{info.min}, {info.max}]"
            )
    return array.astype(target)
