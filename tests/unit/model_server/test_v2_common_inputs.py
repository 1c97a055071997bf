"""The C fast path for v2 inputs against the general decoding it stands in for.

decode_common may decline anything (None), but what it accepts the general path must accept
too, with the same dtype, shape and bytes; and whatever the general path refuses, it must
decline. Hypothesis builds items around the common form and breaks them in every field.
"""

from __future__ import annotations

import array
import tracemalloc
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelship_server.core import limits
from modelship_server.core.errors import ServingError
from modelship_server.protocols import json_body, v2_codec
from modelship_server.protocols.v2_rest import decode_inputs

NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-4.0, max_value=4.0, allow_nan=False),
    st.integers(min_value=-(2**31) - 2, max_value=2**31 + 2),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 3.4e38, 3.5e38, 1e-46, -0.0]),
)
ODD_VALUES = st.sampled_from([True, False, None, "1.5", {"b64": "AA=="}, [1.0], float("inf")])
DATATYPES = st.sampled_from(
    ["FP32", "FP64", "INT32", "INT64", "FP16", "INT8", "UINT64", "BOOL", "BYTES", "fp32", ""]
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.lists(st.integers(min_value=0, max_value=4), max_size=3))
    count = int(np.prod(shape))
    data: Any = draw(st.lists(NUMBERS, min_size=count, max_size=count))
    if draw(st.booleans()) and count:
        # What json_body hands over for a long numeric array: float64 or int64, any rank.
        kind = draw(st.sampled_from([np.float64, np.int64]))
        values = draw(
            st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=count)
            if kind is np.int64
            else st.lists(
                st.floats(allow_nan=False, allow_infinity=False), min_size=count, max_size=count
            )
        )
        data = np.array(values[:count], dtype=kind).reshape(
            draw(st.sampled_from([(count,), shape]))
        )
    item: dict[str, Any] = {
        "name": draw(st.sampled_from(["x", "y", "x"])),
        "datatype": draw(DATATYPES),
        "shape": shape,
        "data": data,
    }
    fault = draw(st.sampled_from(["none"] * 6 + ["shape", "data", "value", "field", "extra"]))
    if fault == "shape":
        item["shape"] = draw(
            st.sampled_from([[*shape, -1], [True, 1], [1.0], (1,), "1", None, [2**70], [2**40] * 2])
        )
    elif fault == "data":
        # What JSON gives but the common form is not, and objects JSON never gives.
        item["data"] = draw(
            st.sampled_from(
                [
                    [],
                    [[1.0]],
                    1.0,
                    "1",
                    None,
                    (1.0,),
                    np.ravel(data).tolist()[:-1] if count else [1],
                    b"\x00" * 8,
                    memoryview(b"\x00" * 8),
                    array.array("d", [1.0] * max(count, 1)),
                    np.zeros((max(count, 1), 2))[:, 0],
                    np.zeros(max(count, 1), dtype=np.int32),
                    np.zeros(max(count, 1), dtype=bool),
                    np.zeros(max(count, 1), dtype=object),
                    np.float64(1.0),
                ]
            )
        )
    elif fault == "value" and count and isinstance(data, list):
        data[draw(st.integers(min_value=0, max_value=count - 1))] = draw(ODD_VALUES)
    elif fault == "field":
        item.pop(draw(st.sampled_from(["name", "datatype", "shape", "data"])))
        item["other"] = 1
    elif fault == "extra":
        item["parameters"] = {}
    return item


def general(request_items: Any) -> dict[str, np.ndarray] | ServingError:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return decode_inputs(request_items, b"", True)
    except ServingError as exc:
        return exc


@pytest.fixture(
    params=[(1 << 26, 256 << 20), (6, 24), (1 << 70, 1 << 70)],
    ids=["default-limits", "tiny-limits", "limits-past-int64"],
)
def tensor_limits(request: pytest.FixtureRequest) -> Iterator[None]:
    before = limits.current()
    limits.configure(limits.TensorLimits(*request.param))
    yield
    limits.configure(before)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(items(), min_size=1, max_size=3))
def test_what_the_fast_path_accepts_the_general_path_decodes_alike(
    tensor_limits: None, request_items: list[dict[str, Any]]
) -> None:
    fast = v2_codec.decode_common(request_items)
    reference = general(request_items)
    if fast is None:
        return
    assert not isinstance(reference, ServingError), (request_items, reference)
    assert list(fast) == list(reference)
    for key, decoded in fast.items():
        expected = np.asarray(reference[key])
        assert decoded.dtype == expected.dtype, key
        assert decoded.shape == expected.shape, key
        assert decoded.tobytes() == expected.tobytes(), key


@pytest.mark.parametrize(
    ("item", "dtype"),
    [
        ({"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}, np.float32),
        ({"name": "x", "datatype": "FP64", "shape": [2], "data": [1, 2.5]}, np.float64),
        ({"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [101, 2023, 102]}, np.int64),
        ({"name": "ids", "datatype": "INT32", "shape": [3], "data": [-1, 0, 2**31 - 1]}, np.int32),
        (
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [1, 40],
                "data": json_body.parse(b'{"d": [' + b",".join([b"0.5"] * 40) + b"]}").value["d"],
            },
            np.float32,
        ),
    ],
    ids=["fp32", "fp64-ints", "int64", "int32", "parsed-array"],
)
def test_the_common_forms_take_the_fast_path(item: dict[str, Any], dtype: type) -> None:
    fast = v2_codec.decode_common([item])
    assert fast is not None, "no fast path: was the C extension built? install gcc, make setup"
    assert fast[item["name"]].dtype == dtype
    assert fast[item["name"]].shape == tuple(item["shape"])
    assert fast[item["name"]].flags.writeable


@pytest.mark.parametrize(
    "item",
    [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [True]},
        {"name": "x", "datatype": "INT32", "shape": [1], "data": [2**31]},
        {"name": "x", "datatype": "INT64", "shape": [1], "data": [1.0]},
        {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0]},
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0], "parameters": {}},
        {"name": "x", "datatype": "FP32\x00", "shape": [1], "data": [1.0]},
        {"name": "x", "datatype": "FP32", "shape": [-1], "data": [1.0]},
    ],
    ids=["bool", "int32-range", "float-for-int", "count", "parameters", "nul-datatype", "negative"],
)
def test_anything_else_is_left_to_the_general_path(item: dict[str, Any]) -> None:
    assert v2_codec.decode_common([item]) is None


def test_a_name_given_twice_is_left_to_the_general_path() -> None:
    item = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    assert v2_codec.decode_common([item, dict(item)]) is None
    assert isinstance(general([item, dict(item)]), ServingError)


def test_a_big_declared_shape_with_little_data_allocates_nothing_big() -> None:
    # 100 bytes of request must not cost a 256 MB buffer before the count is found short.
    item = {"name": "x", "datatype": "FP32", "shape": [1 << 26], "data": [1.0]}
    tracemalloc.start()
    try:
        assert v2_codec.decode_common([item]) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
