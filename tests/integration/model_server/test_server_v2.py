"""Open Inference Protocol v2 with tritonclient (HTTP and gRPC), JSON and binary tensors."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from server_process import ServerProcess
from tritonclient.utils import InferenceServerException


@pytest.fixture
def http_client(reference_server: ServerProcess) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(f"127.0.0.1:{reference_server.rest_port}")


@pytest.fixture
def grpc_client(reference_server: ServerProcess) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(reference_server.grpc_target)


X = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
EXPECTED = np.array([[2.5], [3.0], [4.5]], dtype=np.float32)


@pytest.mark.parametrize("binary", [False, True])
def test_http_infer(http_client: triton_http.InferenceServerClient, binary: bool) -> None:
    tensor = triton_http.InferInput("x", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    wanted = triton_http.InferRequestedOutput("y", binary_data=binary)
    result = http_client.infer("half_plus_two", [tensor], outputs=[wanted])
    np.testing.assert_allclose(result.as_numpy("y"), EXPECTED)
    response = result.get_response()
    assert response["model_name"] == "half_plus_two"
    assert response["model_version"] == "123"


def test_http_infer_large_json_tensor(http_client: triton_http.InferenceServerClient) -> None:
    # Past json_body.MIN_NUMBERS: the "data" array takes the C parser's path.
    x = np.linspace(-10, 10, 200, dtype=np.float32).reshape(200, 1)
    tensor = triton_http.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    wanted = triton_http.InferRequestedOutput("y", binary_data=False)
    result = http_client.infer("half_plus_two", [tensor], outputs=[wanted])
    np.testing.assert_allclose(result.as_numpy("y"), x / 2 + 2)


def test_http_infer_by_version(http_client: triton_http.InferenceServerClient) -> None:
    tensor = triton_http.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[4.0]], dtype=np.float32))
    result = http_client.infer("two_versions", [tensor], model_version="123")
    assert result.get_response()["model_version"] == "123"
    np.testing.assert_allclose(result.as_numpy("y"), [[4.0]])


def test_http_health_and_metadata(http_client: triton_http.InferenceServerClient) -> None:
    assert http_client.is_server_live()
    assert http_client.is_server_ready()
    assert http_client.is_model_ready("two_versions", "124")
    assert not http_client.is_model_ready("two_versions", "7")
    meta = http_client.get_model_metadata("two_versions")
    assert meta["versions"] == ["123", "124"]
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]
    assert http_client.get_server_metadata()["name"] == "modelship"


@pytest.mark.parametrize("binary", [False, True])
def test_grpc_infer(grpc_client: triton_grpc.InferenceServerClient, binary: bool) -> None:
    tensor = triton_grpc.InferInput("x", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    if not binary:
        # Send typed contents instead of raw bytes: the other wire form the spec allows.
        tensor._input.contents.fp32_contents.extend(X.reshape(-1).tolist())
        tensor._raw_content = None
    result = grpc_client.infer("half_plus_two", [tensor])
    np.testing.assert_allclose(result.as_numpy("y"), EXPECTED)


def test_grpc_health_metadata_and_errors(grpc_client: triton_grpc.InferenceServerClient) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("half_plus_three")
    meta = grpc_client.get_model_metadata("half_plus_three", as_json=True)
    assert meta["name"] == "half_plus_three"
    assert meta["versions"] == ["123"]
    tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0]], dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("nope", [tensor])
    assert "StatusCode.NOT_FOUND" in str(info.value.status())
    np.testing.assert_allclose(
        grpc_client.infer("half_plus_three", [tensor]).as_numpy("y"), [[3.5]]
    )


def test_bytes_tensors_round_trip_as_binary(rest: httpx.Client) -> None:
    """A BYTES input framed by the binary extension reaches a string signature intact."""
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[2.0]))}
        )
    ).SerializeToString()
    raw = len(example).to_bytes(4, "little") + example
    head = (
        b'{"parameters": {"signature_name": "regress_x_to_y"}, "inputs": [{"name": "inputs",'
        b' "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": '
        + str(len(raw)).encode()
        + b"}}]}"
    )
    reply = rest.post(
        "/v2/models/half_plus_two/infer",
        content=head + raw,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [3.0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [1.0]}]}, "shape"),
        ({"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1.0]}]}, "FP99"),
        ({"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}, "z"),
        ({"inputs": []}, "inputs"),
    ],
)
def test_rest_errors(rest: httpx.Client, body: object, fragment: str) -> None:
    reply = rest.post("/v2/models/half_plus_two/infer", json=body)
    assert reply.status_code == 400, reply.text
    assert fragment in reply.json()["error"]


def test_rest_unknown_model_is_404(rest: httpx.Client) -> None:
    assert rest.get("/v2/models/nope").status_code == 404
    assert rest.get("/v2/models/nope/ready").status_code == 404
