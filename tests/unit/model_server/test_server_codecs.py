"""Tensor codecs and input checks: JSON (TF Serving), TensorProto, Open Inference Protocol."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from modelship_server.core.errors import ServingError
from modelship_server.core.types import Signature, TensorSpec
from modelship_server.core.validate import check_inputs
from modelship_server.protocols import json_tensors, tensor_proto, v2_codec
from tensorflow.core.framework import tensor_pb2


def test_json_numbers_and_b64_strings() -> None:
    arr = json_tensors.to_array("x", [[1, 2], [3, 4]], "DT_FLOAT")
    assert arr.shape == (2, 2)
    strings = json_tensors.to_array(
        "s", [{"b64": base64.b64encode(b"\x00\x01").decode()}, "hé"], "DT_STRING"
    )
    assert strings.tolist() == [b"\x00\x01", "hé".encode()]
    for bad, dtype in (
        ([[1], 2], "DT_FLOAT"),
        (["a"], "DT_FLOAT"),
        ([{"b64": "!!"}], "DT_STRING"),
        ([1], "DT_STRING"),
    ):
        with pytest.raises(ServingError):
            json_tensors.to_array("x", bad, dtype)


def test_b64_values_over_the_limit_are_refused() -> None:
    value = {"b64": base64.b64encode(b"x" * 100).decode()}
    assert json_tensors.to_array("s", [value], "DT_STRING", max_b64=100).tolist() == [b"x" * 100]
    with pytest.raises(ServingError) as info:
        json_tensors.to_array("s", [value], "DT_STRING", max_b64=10)
    assert "larger than 10 bytes" in info.value.message


def test_json_output_strings() -> None:
    assert json_tensors.to_json("label", np.array([b"cat", b"\xff"], dtype=object)) == [
        "cat",
        {"b64": base64.b64encode(b"\xff").decode()},
    ]
    assert json_tensors.to_json("img_bytes", np.array([b"ab"], dtype=object)) == [{"b64": "YWI="}]


SIG = Signature(
    name="s",
    method_name="tensorflow/serving/predict",
    inputs={"a": TensorSpec("a", "DT_INT32", (-1, 2)), "b": TensorSpec("b", "DT_STRING", None)},
    outputs={},
)


def test_check_inputs_casts_and_refuses() -> None:
    out = check_inputs(SIG, {"a": np.array([[1.0, 2.0]]), "b": np.array(["x"])})
    assert out["a"].dtype == np.int32
    assert out["b"].dtype == object
    cases = [
        {"a": np.array([[1.5, 2.0]]), "b": np.array(["x"])},  # would truncate
        {"a": np.array([[1, 2, 3]]), "b": np.array(["x"])},  # fixed dim differs
        {"a": np.array([[2**40, 1]]), "b": np.array(["x"])},  # out of int32 range
        {"a": np.array([[1, 2]])},  # missing b
        {"a": np.array([[1, 2]]), "b": np.array(["x"]), "c": np.array([1])},  # unknown c
        {"a": np.array([[1, 2]]), "b": np.array([1.0])},  # numbers for a string input
    ]
    for inputs in cases:
        with pytest.raises(ServingError):
            check_inputs(SIG, inputs)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1, -2], dtype=np.int64),
        np.array([[True, False]]),
        np.array([b"a", b"bc"], dtype=object),
        np.array(3.5, dtype=np.float64),
    ],
)
def test_tensor_proto_round_trip(array: np.ndarray) -> None:
    proto = tensor_pb2.TensorProto()
    tensor_proto.from_numpy(array, proto)
    back = tensor_proto.to_numpy(tensor_pb2.TensorProto.FromString(proto.SerializeToString()))
    assert back.shape == array.shape
    assert back.tolist() == array.tolist()


def test_tensor_proto_typed_values_and_broadcast() -> None:
    proto = tensor_pb2.TensorProto(dtype=1, float_val=[7.0])
    proto.tensor_shape.dim.add().size = 3
    assert tensor_proto.to_numpy(proto).tolist() == [7.0, 7.0, 7.0]
    proto = tensor_pb2.TensorProto(dtype=1, float_val=[1.0, 2.0])
    proto.tensor_shape.dim.add().size = 3
    with pytest.raises(ServingError):
        tensor_proto.to_numpy(proto)
    proto = tensor_pb2.TensorProto(dtype=1, tensor_content=b"\x00" * 5)
    proto.tensor_shape.dim.add().size = 2
    with pytest.raises(ServingError):
        tensor_proto.to_numpy(proto)


def test_v2_raw_and_json() -> None:
    raw = np.array([[1.5, 2.5]], dtype=np.float32).tobytes()
    assert v2_codec.from_raw("x", v2_codec.v2_type("x", "FP32"), (1, 2), raw).tolist() == [
        [1.5, 2.5]
    ]
    framed = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    assert v2_codec.from_raw("s", v2_codec.v2_type("s", "BYTES"), (2,), framed).tolist() == [
        b"hi",
        b"",
    ]
    assert v2_codec.to_raw(np.array([b"hi", b""], dtype=object)) == framed
    assert (
        v2_codec.from_json("x", v2_codec.v2_type("x", "INT64"), (2, 2), [[1, 2], [3, 4]]).dtype
        == np.int64
    )
    for call in (
        lambda: v2_codec.from_raw("x", v2_codec.v2_type("x", "FP32"), (2,), raw[:4]),
        lambda: v2_codec.from_raw("s", v2_codec.v2_type("s", "BYTES"), (1,), b"\x05\x00\x00\x00ab"),
        lambda: v2_codec.from_json("x", v2_codec.v2_type("x", "FP32"), (3,), [1.0]),
        lambda: v2_codec.from_json("x", v2_codec.v2_type("x", "INT32"), (1,), [1.5]),
        lambda: v2_codec.declared_shape("x", [-1]),
        lambda: v2_codec.v2_type("x", "FP128"),
    ):
        with pytest.raises(ServingError):
            call()
