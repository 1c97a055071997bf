"""Hostile inputs to the decoders: sizes, ranges, strict types, versions, config fields."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from modelship_server import cli
from modelship_server.config_files import UNSUPPORTED_BATCHING, ConfigError, parse_batching
from modelship_server.core import limits, validate
from modelship_server.core.errors import Code, ServingError
from modelship_server.core.types import Signature, TensorSpec
from modelship_server.core.versions import parse_version, plain_version
from modelship_server.protocols import examples, json_tensors, tensor_proto, v2_codec
from tensorflow_serving.apis import predict_pb2


def _refused(call: Callable[[], Any], *words: str) -> str:
    with pytest.raises(ServingError) as info:
        call()
    assert info.value.code == Code.INVALID_ARGUMENT
    for word in words:
        assert word in info.value.message
    assert "Traceback" not in info.value.message
    return info.value.message


@pytest.fixture
def small_limits() -> Iterator[limits.TensorLimits]:
    before = limits.current()
    chosen = limits.TensorLimits(max_elements=1000, max_bytes=2000)
    limits.configure(chosen)
    yield chosen
    limits.configure(before)


# -- the tensor size limit -----------------------------------------------------------------


def test_dims_whose_product_overflows_int64_are_refused_by_name() -> None:
    _refused(lambda: limits.check_shape("x", [1 << 62, 1 << 62], 4), "'x'", "elements")


def test_limits_refuse_by_elements_and_by_bytes(small_limits: limits.TensorLimits) -> None:
    assert limits.check_shape("x", [10, 100], 1) == (10, 100)
    _refused(lambda: limits.check_shape("x", [10, 101], 1), "--max_tensor_elements")
    assert limits.check_shape("x", [500], 4) == (500,)
    _refused(lambda: limits.check_shape("x", [501], 4), "--max_tensor_bytes")
    _refused(lambda: limits.check_shape("x", [-1, 4], 4), "negative")


def _fill_proto(dims: list[int], dtype: Any = tf.float32) -> Any:
    """A tiny TensorProto: one value, a declared shape (TensorFlow fills the rest from it)."""
    proto = tf.make_tensor_proto([1], dtype=dtype)
    del proto.tensor_shape.dim[:]
    for d in dims:
        proto.tensor_shape.dim.add().size = d
    return proto


def test_a_huge_declared_fill_is_refused_before_allocating() -> None:
    proto = _fill_proto([1 << 20, 1 << 20])
    request = predict_pb2.PredictRequest()
    request.inputs["x"].CopyFrom(proto)
    assert len(request.SerializeToString()) < 64
    tracemalloc.start()
    try:
        _refused(lambda: tensor_proto.to_numpy(proto, "x"), "'x'")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_fill_within_the_limit_still_works(small_limits: limits.TensorLimits) -> None:
    array = tensor_proto.to_numpy(_fill_proto([10, 50]), "x")
    assert array.shape == (10, 50)
    assert np.all(array == 1)
    _refused(lambda: tensor_proto.to_numpy(_fill_proto([10, 51]), "x"), "--max_tensor_bytes")


def test_v2_declared_shape_is_checked_with_its_datatype(small_limits: limits.TensorLimits) -> None:
    assert v2_codec.declared_shape("x", [1000], v2_codec.v2_type("x", "INT8"))[0] == (1000,)
    _refused(
        lambda: v2_codec.declared_shape("x", [1000], v2_codec.v2_type("x", "FP32")),
        "--max_tensor_bytes",
    )
    _refused(
        lambda: v2_codec.declared_shape("x", [1 << 40, 1 << 40], v2_codec.v2_type("x", "FP32")),
        "'x'",
    )


# -- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "value"),
    [("INT8", 300), ("INT8", -129), ("UINT8", -1), ("UINT8", 256), ("INT32", 1 << 31)],
)
def test_v2_out_of_range_integers_are_refused_not_wrapped(datatype: str, value: int) -> None:
    _refused(
        lambda: v2_codec.from_json("x", v2_codec.v2_type("x", datatype), (1,), [value]),
        "'x'",
        str(value),
    )
    _refused(
        lambda: v2_codec.from_json("x", v2_codec.v2_type("x", datatype), (1,), [value], typed=True),
        "'x'",
    )


def test_v2_in_range_integers_pass_exactly() -> None:
    array = v2_codec.from_json("x", v2_codec.v2_type("x", "INT8"), (2,), [-128, 127])
    assert array.dtype == np.int8
    assert array.tolist() == [-128, 127]
    assert v2_codec.from_json("x", v2_codec.v2_type("x", "UINT8"), (2,), [0, 255]).tolist() == [
        0,
        255,
    ]


@pytest.mark.parametrize(("dtype", "value"), [(tf.int8, 300), (tf.uint8, -1), (tf.int16, 40000)])
def test_tensor_proto_int_val_out_of_range_is_refused(dtype: Any, value: int) -> None:
    proto = tf.make_tensor_proto([0], dtype=dtype)
    proto.ClearField("tensor_content")
    proto.int_val[:] = [value]
    _refused(lambda: tensor_proto.to_numpy(proto, "x"), "'x'", str(value))


def test_signature_cast_refuses_out_of_range_values() -> None:
    signature = Signature("s", "", {"x": TensorSpec("x", "DT_INT8", None)}, {})
    _refused(lambda: validate.check_inputs(signature, {"x": np.array([300])}), "'x'", "300")
    checked = validate.check_inputs(signature, {"x": np.array([-5, 5])})
    assert checked["x"].dtype == np.int8


# -- strict types -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[True], [1.0, True], ["1.5"], [[1.0], ["2"]], [1.0, None]])
def test_float_inputs_take_numbers_only(value: Any) -> None:
    _refused(lambda: json_tensors.to_array("x", value, "DT_FLOAT"), "'x'")
    _refused(
        lambda: v2_codec.from_json("x", v2_codec.v2_type("x", "FP32"), (len(value),), value), "'x'"
    )


def test_int_and_bool_inputs_are_strict_too() -> None:
    _refused(lambda: json_tensors.to_array("x", [True, 2], "DT_INT32"), "'x'", "boolean")
    _refused(lambda: json_tensors.to_array("x", [1, 0], "DT_BOOL"), "'x'", "true or false")
    assert json_tensors.to_array("x", [True, False], "DT_BOOL").tolist() == [True, False]
    assert json_tensors.to_array("x", [1, 2.5], "DT_FLOAT").tolist() == [1.0, 2.5]


def test_numbers_parsed_to_arrays_pass_the_type_check() -> None:
    array = np.arange(40, dtype=np.float64)
    assert json_tensors.to_array("x", array, "DT_FLOAT").dtype == np.float32


# -- names and versions -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["9" * 5000, "\u0661\u0662", "\u00b2", "1.0", "-1", " 1", "1e3"])
def test_versions_that_are_not_plain_numbers_are_refused(text: str) -> None:
    message = _refused(lambda: parse_version(text), "version")
    assert len(message) < 200


def test_versions_parse_within_int64() -> None:
    assert parse_version(None) is None
    assert parse_version("") is None
    assert parse_version("0123") == 123
    assert parse_version(str((1 << 63) - 1)) == (1 << 63) - 1
    assert parse_version("0" * 40 + "7") == 7
    _refused(lambda: parse_version(str(1 << 63)), "version")


@pytest.mark.parametrize(
    ("name", "version"),
    [("123", 123), ("00000123", 123), ("\u0661", None), ("\u00b2", None), ("9" * 5000, None)],
)
def test_version_folders_use_the_same_parser(name: str, version: int | None) -> None:
    assert plain_version(name) == version


def test_a_list_where_a_name_belongs_is_refused() -> None:
    from modelship_server.core.inference import InferenceService  # noqa: PLC0415

    _refused(lambda: InferenceService.signature(None, ["x"]), "signature")  # type: ignore[arg-type]
    signature = Signature("s", "", {}, {"y": TensorSpec("y", "DT_FLOAT", None)})
    _refused(lambda: validate.check_output_keys(signature, [["y"]]), "output")  # type: ignore[list-item]


@pytest.mark.parametrize("value", [1 << 63, -(1 << 63) - 1, [1, 1 << 64]])
def test_example_features_beyond_int64_are_refused(value: Any) -> None:
    _refused(lambda: examples.feature_from_json("f", value), "'f'", "int64")


def test_example_features_at_the_int64_edges_pass() -> None:
    feature = examples.feature_from_json("f", [(1 << 63) - 1, -(1 << 63)])
    assert list(feature.int64_list.value) == [(1 << 63) - 1, -(1 << 63)]


# -- config fields and flags ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "pad_variable_length_inputs: true",
        "enable_large_batch_splitting: true",
        "max_execution_batch_size { value: 8 }",
        'thread_pool_name { value: "pool" }',
    ],
)
def test_unimplemented_batching_fields_are_refused_by_name(text: str) -> None:
    field = text.split(maxsplit=1)[0].rstrip(":")
    assert field in UNSUPPORTED_BATCHING
    with pytest.raises(ConfigError, match=field):
        parse_batching(text)


def test_unset_batching_fields_are_fine() -> None:
    config = parse_batching("max_batch_size { value: 8 }\npad_variable_length_inputs: false")
    assert config.max_batch_size == 8


def test_tensor_limit_flags(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--model_base_path", str(tmp_path)]
    settings = cli.parse([*base, "--max_tensor_elements=10", "--max_tensor_bytes=40"])
    assert settings.tensor_limits == limits.TensorLimits(10, 40)
    assert cli.parse(base).tensor_limits == limits.TensorLimits()
    with pytest.raises(SystemExit):
        cli.parse([*base, "--max_tensor_bytes=0"])
    assert "--max_tensor_bytes must be positive" in capsys.readouterr().err


def test_a_request_budget_counts_its_tensors_together(small_limits: limits.TensorLimits) -> None:
    budget = limits.RequestBudget()
    budget.add("a", 1500)
    _refused(lambda: budget.add("b", 501), "'b'", "together", "--max_tensor_bytes")
    fresh = limits.RequestBudget()
    fresh.add("a", 2000)
    assert fresh.used == 2000
