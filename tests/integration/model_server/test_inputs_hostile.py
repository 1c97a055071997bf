"""Hostile inputs against a real server: oversized declared tensors, out-of-range integers,
loose types, malformed versions and names, over REST and gRPC (both protocols each).

Every refusal must be a 4xx or INVALID_ARGUMENT naming the input, never Python exception text,
and the server must go on answering good requests afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton_grpc
from conftest import ServerFactory
from server_process import ServerProcess
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

MAX_TENSOR_BYTES = 32 << 20
TIMEOUT = 30
# Words of Python exception text that must never reach a client.
LEAKS = ("Traceback", "Error(", "object of type", "invalid literal", "unhashable", "Exceeds the")


def save_typed_model(path: Path) -> None:
    """A SavedModel y = i8 + u8 + f, with one input of each of three element types."""

    class Typed(tf.Module):  # type: ignore[misc]
        @tf.function(  # type: ignore[misc]
            input_signature=[
                tf.TensorSpec([None], tf.int8, name="i8"),
                tf.TensorSpec([None], tf.uint8, name="u8"),
                tf.TensorSpec([None], tf.float32, name="f"),
            ]
        )
        def serve(self, i8: tf.Tensor, u8: tf.Tensor, f: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.cast(i8, tf.float32) + tf.cast(u8, tf.float32) + f}

    module = Typed()
    tf.saved_model.save(module, str(path / "1"), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def server(
    testdata: Path, server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    folder = tmp_path_factory.mktemp("hostile")
    save_typed_model(folder / "typed")
    reference = testdata / "saved_model_half_plus_two_cpu"
    config = folder / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "typed" base_path: "{folder / "typed"}" }}\n'
        f'  config {{ name: "half_plus_two" base_path: "{reference}" }}\n'
        "}\n"
    )
    return server_factory(f"--model_config_file={config}", f"--max_tensor_bytes={MAX_TENSOR_BYTES}")


@pytest.fixture
def rest(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    options = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(server.grpc_target, options=options) as chan:
        yield chan


def _refused_rest(reply: httpx.Response, *words: str) -> None:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
    message = reply.json()["error"]
    for word in words:
        assert word in message, message
    for leak in LEAKS:
        assert leak not in message, message


def _refused_grpc(call: Any, request: Any, *words: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    for word in words:
        assert word in error.details(), error.details()
    for leak in LEAKS:
        assert leak not in error.details(), error.details()


def _still_serving(rest: httpx.Client) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", json={"instances": [1.0, 2.0]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == [2.5, 3.0]


# -- TF Serving REST --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "1.5", None, {"b64": "AAAA"}])
def test_rest_float_input_takes_numbers_only(rest: httpx.Client, value: Any) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", json={"instances": [1.0, value]})
    _refused_rest(reply, "'x'")
    _still_serving(rest)


@pytest.mark.parametrize(("key", "value"), [("i8", 300), ("i8", -129), ("u8", -1), ("u8", 256)])
def test_rest_out_of_range_integers_are_refused(rest: httpx.Client, key: str, value: int) -> None:
    inputs: dict[str, Any] = {"i8": [1], "u8": [1], "f": [0.5]}
    inputs[key] = [value]
    reply = rest.post("/v1/models/typed:predict", json={"inputs": inputs})
    _refused_rest(reply, repr(key), str(value))


def test_rest_out_of_range_in_a_long_array(rest: httpx.Client) -> None:
    inputs = {"i8": [1] * 39 + [-200], "u8": [1] * 40, "f": [0.5] * 40}
    reply = rest.post("/v1/models/typed:predict", json={"inputs": inputs})
    _refused_rest(reply, "'i8'", "-200")


def test_rest_in_range_integers_are_exact(rest: httpx.Client) -> None:
    inputs = {"i8": [-128, 127], "u8": [255, 0], "f": [0.5, 0.5]}
    reply = rest.post("/v1/models/typed:predict", json={"inputs": inputs})
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"] == [127.5, 127.5]


@pytest.mark.parametrize("version", ["9" * 5000, "\u0661", "\u00b2", "1e3", str(1 << 63)])
def test_rest_malformed_versions_are_400(rest: httpx.Client, version: str) -> None:
    reply = rest.post(
        f"/v1/models/half_plus_two/versions/{version}:predict", json={"instances": [1.0]}
    )
    _refused_rest(reply, "version")
    reply = rest.get(f"/v2/models/half_plus_two/versions/{version}")
    _refused_rest(reply, "version")


def test_rest_list_where_a_name_belongs(rest: httpx.Client) -> None:
    body: dict[str, Any] = {"signature_name": ["serving_default"], "instances": [1.0]}
    _refused_rest(rest.post("/v1/models/half_plus_two:predict", json=body))
    v2: dict[str, Any] = {
        "parameters": {"signature_name": ["serving_default"]},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
    }
    _refused_rest(rest.post("/v2/models/half_plus_two/infer", json=v2), "signature")
    v2 = {"inputs": [{"name": ["x"], "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    _refused_rest(rest.post("/v2/models/half_plus_two/infer", json=v2), "name")
    v2 = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
        "outputs": [{"name": ["y"]}],
    }
    _refused_rest(rest.post("/v2/models/half_plus_two/infer", json=v2), "output")


# The JSON parser reads integers up to 2^64 - 1 as integers (beyond that, and below -2^63, as
# floats, which a float feature takes).
@pytest.mark.parametrize("value", [1 << 63, (1 << 64) - 1])
def test_rest_example_ints_beyond_int64(rest: httpx.Client, value: int) -> None:
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": value}]}
    _refused_rest(rest.post("/v1/models/half_plus_two:regress", json=body), "'x'", "int64")
    _still_serving(rest)


# -- Open Inference Protocol REST -------------------------------------------------------------


def _v2_typed(i8: Any, u8: Any, f: Any, datatype_f: str = "FP32") -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "i8", "datatype": "INT8", "shape": [len(i8)], "data": i8},
            {"name": "u8", "datatype": "UINT8", "shape": [len(u8)], "data": u8},
            {"name": "f", "datatype": datatype_f, "shape": [len(f)], "data": f},
        ]
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_v2_typed([300], [1], [0.5]), ("'i8'", "300")),
        (_v2_typed([1], [-1], [0.5]), ("'u8'", "-1")),
        (_v2_typed([1], [1], [True]), ("'f'",)),
        (_v2_typed([1], [1], ["1.5"]), ("'f'",)),
        (_v2_typed([True], [1], [0.5]), ("'i8'",)),
        # 40 numbers: the C parser's path rather than orjson's lists
        (_v2_typed([1] * 39 + [300], [1] * 40, [0.5] * 40), ("'i8'", "300")),
        (_v2_typed([1] * 40, [-1] + [1] * 39, [0.5] * 40), ("'u8'", "-1")),
        (_v2_typed([1] * 40, [1] * 40, [0.5] * 39 + [True]), ("'f'",)),
    ],
)
def test_v2_rest_ranges_and_types(rest: httpx.Client, body: Any, words: tuple[str, ...]) -> None:
    _refused_rest(rest.post("/v2/models/typed/infer", json=body), *words)


def test_v2_rest_in_range_integers_are_exact(rest: httpx.Client) -> None:
    reply = rest.post("/v2/models/typed/infer", json=_v2_typed([-128], [255], [0.25]))
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [127.25]


@pytest.mark.parametrize(
    "shape", [[1 << 40, 1 << 40], [1 << 62, 1 << 62, 1 << 62], [MAX_TENSOR_BYTES // 4 + 1]]
)
def test_v2_rest_declared_shape_over_the_limit(rest: httpx.Client, shape: list[int]) -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "data": [1.0]}]}
    _refused_rest(rest.post("/v2/models/half_plus_two/infer", json=body), "'x'")
    head = b'{"inputs":[{"name":"x","datatype":"FP32","shape":%s,' % str(shape).encode()
    head += b'"parameters":{"binary_data_size":4}}]}'
    reply = rest.post(
        "/v2/models/half_plus_two/infer",
        content=head + b"\x00\x00\x80\x3f",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    _refused_rest(reply, "'x'")
    _still_serving(rest)


@pytest.mark.parametrize("length", ["\u00b2", "\u0661", "9" * 5000, "-1", "0x4"])
def test_v2_rest_malformed_binary_header_length(rest: httpx.Client, length: str) -> None:
    head = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1.0]}]}'
    reply = rest.post(
        "/v2/models/half_plus_two/infer",
        content=head,
        headers={"Inference-Header-Content-Length": length.encode()},
    )
    _refused_rest(reply, "inference-header-content-length")


# -- TF Serving gRPC --------------------------------------------------------------------------


def _fill_request(model: str, key: str, dims: list[int], dtype: Any = tf.float32) -> Any:
    """A Predict with one value and a declared shape: TensorFlow fills the tensor from it."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    proto = request.inputs[key]
    proto.CopyFrom(tf.make_tensor_proto([1], dtype=dtype))
    del proto.tensor_shape.dim[:]
    for d in dims:
        proto.tensor_shape.dim.add().size = d
    return request


@pytest.mark.parametrize("dims", [[1 << 20, 1 << 20], [1 << 62, 1 << 62], [1 << 40, -1]])
def test_grpc_tiny_predict_declaring_a_huge_tensor(
    channel: grpc.Channel, rest: httpx.Client, dims: list[int]
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = _fill_request("half_plus_two", "x", dims)
    assert len(request.SerializeToString()) < 64
    _refused_grpc(stub.Predict, request, "'x'")
    _still_serving(rest)


def test_grpc_fill_within_the_limit_is_served(channel: grpc.Channel) -> None:
    # 16 MiB of float32: under the limit, decoded off the event loop.
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    rows = (16 << 20) // 4
    reply = stub.Predict(_fill_request("half_plus_two", "x", [rows, 1]), timeout=TIMEOUT * 4)
    y = tf.make_ndarray(reply.outputs["y"])
    assert y.shape == (rows, 1)
    assert np.all(y == 2.5)


def test_grpc_many_tensors_each_under_the_limit_count_together(
    channel: grpc.Channel, rest: httpx.Client
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    each = MAX_TENSOR_BYTES // 2
    request = _fill_request("half_plus_two", "x", [each // 4])
    for index in range(1, 40):
        request.inputs[f"extra{index}"].CopyFrom(request.inputs["x"])
    assert len(request.SerializeToString()) < 4096
    _refused_grpc(stub.Predict, request, "together")
    _still_serving(rest)


@pytest.mark.parametrize(("key", "dtype", "value"), [("i8", tf.int8, 300), ("u8", tf.uint8, -1)])
def test_grpc_int_val_out_of_range(channel: grpc.Channel, key: str, dtype: Any, value: int) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "typed"
    request.inputs["i8"].CopyFrom(tf.make_tensor_proto([1], dtype=tf.int8))
    request.inputs["u8"].CopyFrom(tf.make_tensor_proto([1], dtype=tf.uint8))
    request.inputs["f"].CopyFrom(tf.make_tensor_proto([0.5], dtype=tf.float32))
    bad = request.inputs[key]
    bad.ClearField("tensor_content")
    bad.int_val[:] = [value]
    _refused_grpc(stub.Predict, request, repr(key), str(value))


# -- Open Inference Protocol gRPC -------------------------------------------------------------


@pytest.fixture
def v2_stub(channel: grpc.Channel) -> Any:
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _v2_grpc_typed(i8: list[int], u8: list[int]) -> Any:
    request = service_pb2.ModelInferRequest(model_name="typed")
    request.inputs.add(name="i8", datatype="INT8", shape=[len(i8)]).contents.int_contents[:] = i8
    request.inputs.add(name="u8", datatype="UINT8", shape=[len(u8)]).contents.uint_contents[:] = u8
    request.inputs.add(name="f", datatype="FP32", shape=[len(i8)]).contents.fp32_contents[:] = [
        0.5
    ] * len(i8)
    return request


def test_v2_grpc_out_of_range_contents(v2_stub: Any) -> None:
    _refused_grpc(v2_stub.ModelInfer, _v2_grpc_typed([300], [1]), "'i8'", "300")
    _refused_grpc(v2_stub.ModelInfer, _v2_grpc_typed([1], [256]), "'u8'", "256")
    reply = v2_stub.ModelInfer(_v2_grpc_typed([-128], [255]), timeout=TIMEOUT)
    assert np.frombuffer(reply.raw_output_contents[0], dtype="<f4").tolist() == [127.5]


@pytest.mark.parametrize("shape", [[1 << 40, 1 << 40], [1 << 62, 1 << 62, 4], [-1]])
def test_v2_grpc_declared_shape_over_the_limit(v2_stub: Any, shape: list[int]) -> None:
    request = service_pb2.ModelInferRequest(model_name="half_plus_two")
    request.inputs.add(name="x", datatype="FP32", shape=shape)
    request.raw_input_contents.append(b"\x00\x00\x80\x3f")
    _refused_grpc(v2_stub.ModelInfer, request, "'x'")


@pytest.mark.parametrize("version", ["9" * 5000, "\u0661", str(1 << 63)])
def test_v2_grpc_malformed_versions(v2_stub: Any, version: str) -> None:
    request = service_pb2.ModelInferRequest(model_name="half_plus_two", model_version=version)
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents[:] = [1.0]
    _refused_grpc(v2_stub.ModelInfer, request, "version")
    _refused_grpc(
        v2_stub.ModelMetadata,
        service_pb2.ModelMetadataRequest(name="half_plus_two", version=version),
        "version",
    )


def test_tritonclient_int8_round_trip(server: ServerProcess) -> None:
    client = triton_grpc.InferenceServerClient(server.grpc_target)
    tensors = []
    for key, datatype, value in (
        ("i8", "INT8", np.array([-7], np.int8)),
        ("u8", "UINT8", np.array([200], np.uint8)),
        ("f", "FP32", np.array([0.5], np.float32)),
    ):
        tensor = triton_grpc.InferInput(key, [1], datatype)
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    result = client.infer("typed", tensors)
    assert result.as_numpy("y").tolist() == [193.5]


# -- config fields the server does not implement ----------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "pad_variable_length_inputs: true",
        "enable_large_batch_splitting: true",
        "max_execution_batch_size { value: 8 }",
        'thread_pool_name { value: "pool" }',
    ],
)
def test_unimplemented_batching_fields_stop_the_server(
    testdata: Path, server_factory: ServerFactory, tmp_path: Path, field: str
) -> None:
    batching = tmp_path / "batching.config"
    batching.write_text(f"max_batch_size {{ value: 8 }}\n{field}\n")
    server = server_factory(
        f"--model_base_path={testdata}/saved_model_half_plus_two_cpu",
        "--enable_batching",
        f"--batching_parameters_file={batching}",
        ready=False,
    )
    assert server.proc.wait(timeout=120) == 2
    name = field.split(maxsplit=1)[0].rstrip(":")
    assert f"{name} is not supported" in server.log_tail()
