"""Open Inference Protocol parameters are typed: a JSON true is not 1, "false" is not true.

Python's bool is an int, so `"binary_data_size": true` used to read as 1 byte; and any truthy
value (the string "false" among them) used to turn binary output on. Each must be refused
with a 400 naming the input or output and the parameter.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from server_process import ServerProcess
from tritonclient.utils import InferenceServerException

INFER = "/v2/models/half_plus_two/infer"
FOUR = np.array([4.0], dtype="<f4").tobytes()  # one FP32 element


def _binary_request(rest: httpx.Client, size: Any, payload: bytes = FOUR) -> httpx.Response:
    head = (
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],'
        b' "parameters": {"binary_data_size": ' + _json(size) + b"}}]}"
    )
    return rest.post(
        INFER,
        content=head + payload,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


@pytest.mark.parametrize("size", [True, False, -1, 4.0, "4", [4], {"n": 4}])
def test_binary_data_size_must_be_a_non_negative_integer(rest: httpx.Client, size: Any) -> None:
    payload = FOUR[:1] if size is True else FOUR
    reply = _binary_request(rest, size, payload)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert "'x'" in error, error
    assert "binary_data_size" in error, error


def test_binary_data_size_integer_still_works(rest: httpx.Client) -> None:
    reply = _binary_request(rest, 4)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [4.0]


JSON_INPUT = {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [4.0]}


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            {"inputs": [JSON_INPUT], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]},
            ("'y'", "binary_data"),
        ),
        (
            {
                "inputs": [JSON_INPUT],
                "outputs": [{"name": "y", "parameters": {"binary_data": "false"}}],
            },
            ("'y'", "binary_data"),
        ),
        (
            {"inputs": [JSON_INPUT], "parameters": {"binary_data_output": 1}},
            ("binary_data_output",),
        ),
        (
            {"inputs": [JSON_INPUT], "parameters": {"binary_data_output": "true"}},
            ("binary_data_output",),
        ),
        (
            {"inputs": [JSON_INPUT], "outputs": [{"name": "y", "parameters": [True]}]},
            ("'y'", "parameters"),
        ),
        (
            {"inputs": [{**JSON_INPUT, "parameters": "binary"}]},
            ("'x'", "parameters"),
        ),
        (
            {
                "inputs": [JSON_INPUT],
                "outputs": [{"name": "y", "parameters": {"classification": True}}],
            },
            ("'y'", "classification"),
        ),
    ],
)
def test_wrongly_typed_parameters_are_refused(
    rest: httpx.Client, body: object, fragments: tuple[str, ...]
) -> None:
    reply = rest.post(INFER, json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    for fragment in fragments:
        assert fragment in error, error


@pytest.mark.parametrize("binary", [True, False])
def test_boolean_parameters_act(rest: httpx.Client, binary: bool) -> None:
    body = {
        "inputs": [JSON_INPUT],
        "outputs": [{"name": "y", "parameters": {"binary_data": binary}}],
    }
    reply = rest.post(INFER, json=body)
    assert reply.status_code == 200, reply.text
    if binary:
        assert reply.headers["content-type"] == "application/octet-stream"
    else:
        assert reply.json()["outputs"][0]["data"] == [4.0]


@pytest.fixture
def http_client(reference_server: ServerProcess) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(f"127.0.0.1:{reference_server.rest_port}")


def test_tritonclient_binary_round_trip(http_client: triton_http.InferenceServerClient) -> None:
    x = np.array([[1.0], [6.0]], dtype=np.float32)
    tensor = triton_http.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = http_client.infer("half_plus_two", [tensor])  # binary_data_output: true
    np.testing.assert_allclose(result.as_numpy("y"), x / 2 + 2)


def test_tritonclient_custom_parameter_of_the_wrong_type(
    http_client: triton_http.InferenceServerClient,
) -> None:
    tensor = triton_http.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0]], dtype=np.float32), binary_data=False)
    wanted = triton_http.InferRequestedOutput("y", binary_data=False)
    with pytest.raises(InferenceServerException, match="signature"):
        http_client.infer(
            "half_plus_two", [tensor], outputs=[wanted], parameters={"signature_name": 1}
        )


def test_tritonclient_classification_is_refused_by_name(
    http_client: triton_http.InferenceServerClient,
) -> None:
    tensor = triton_http.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0]], dtype=np.float32), binary_data=False)
    wanted = triton_http.InferRequestedOutput("y", binary_data=False, class_count=1)
    with pytest.raises(InferenceServerException, match="classification"):
        http_client.infer("half_plus_two", [tensor], outputs=[wanted])


def test_grpc_signature_name_must_be_a_string_param(reference_server: ServerProcess) -> None:
    client = triton_grpc.InferenceServerClient(reference_server.grpc_target)
    tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0]], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="signature_name") as caught:
        client.infer("half_plus_two", [tensor], parameters={"signature_name": 1})
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    reply = client.infer(
        "half_plus_two", [tensor], parameters={"signature_name": "serving_default"}
    )
    np.testing.assert_allclose(reply.as_numpy("y"), [[2.5]])
