"""TF Serving gRPC with the tensorflow-serving-api stubs, against the reference models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from server_process import ServerProcess
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2


@pytest.fixture
def channel(reference_server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(reference_server.grpc_target) as chan:
        yield chan


@pytest.fixture
def predictions(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _example(x: float) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
        )
    )


def test_predict(predictions: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0], [2.0], [5.0]], dtype=tf.float32))
    reply = predictions.Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs["y"]), [[2.5], [3.0], [4.5]])
    assert reply.model_spec.name == "half_plus_two"
    assert reply.model_spec.version.value == 123
    assert reply.model_spec.signature_name == "serving_default"


def test_predict_by_version_and_label(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    for field, value, version in (("version", 123, 123), ("version_label", "canary", 124)):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "two_versions"
        if field == "version":
            request.model_spec.version.value = value  # type: ignore[assignment]
        else:
            request.model_spec.version_label = value  # type: ignore[assignment]
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[4.0]], dtype=tf.float32))
        reply = predictions.Predict(request, timeout=30)
        assert reply.model_spec.version.value == version
        np.testing.assert_allclose(tf.make_ndarray(reply.outputs["y"]), [[4.0]])


def test_classify_and_regress(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.extend([_example(2.0), _example(4.0)])
    reply = predictions.Classify(request, timeout=30)
    scores = [[c.score for c in row.classes] for row in reply.result.classifications]
    assert scores == [[3.0], [4.0]]

    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "half_plus_two"
    regress.model_spec.signature_name = "regress_x_to_y"
    regress.input.example_list.examples.append(_example(2.0))
    reply = predictions.Regress(regress, timeout=30)
    assert [r.value for r in reply.result.regressions] == [3.0]


def test_multi_inference(predictions: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = inference_pb2.MultiInferenceRequest()
    for sig, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("regress_x_to_y2", "tensorflow/serving/regress"),
    ):
        task = request.tasks.add()
        task.model_spec.name = "half_plus_two"
        task.model_spec.signature_name = sig
        task.method_name = method
    request.input.example_list.examples.append(_example(2.0))
    reply = predictions.MultiInference(request, timeout=30)
    values = [[r.value for r in result.regression_result.regressions] for result in reply.results]
    assert values == [[3.0], [4.0]]  # y = 0.5x + 2, y2 = 0.5x + 3


def test_metadata_matches_tf_serving(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub, testdata: Path
) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    request.metadata_field.append("signature_def")
    reply = predictions.GetModelMetadata(request, timeout=30)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert reply.metadata["signature_def"].Unpack(sig_map)
    as_json = json_format.MessageToDict(
        sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    expected = json.loads((testdata / "half_plus_two_model_metadata.json").read_text())
    assert as_json == expected["metadata"]["signature_def"]
    assert reply.model_spec.version.value == 123


def test_model_status(channel: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "two_versions"
    reply = stub.GetModelStatus(request, timeout=30)
    got = [(s.version, s.state) for s in reply.model_version_status]
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert got == [(123, available), (124, available)]


@pytest.mark.parametrize(
    ("model", "signature", "code"),
    [
        ("nope", "", grpc.StatusCode.NOT_FOUND),
        ("half_plus_two", "nope", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_errors(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    model: str,
    signature: str,
    code: grpc.StatusCode,
) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]], dtype=tf.float32))
    with pytest.raises(grpc.RpcError) as info:
        predictions.Predict(request, timeout=30)
    assert info.value.code() == code
    assert "Traceback" not in (info.value.details() or "")


def test_wrong_dtype_is_invalid_argument(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([["a"]]))
    with pytest.raises(grpc.RpcError) as info:
        predictions.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reload_config(server_factory: object, testdata: Path, tmp_path: Path) -> None:
    """HandleReloadConfigRequest swaps the served models on a server of its own."""
    assert callable(server_factory)
    server: ServerProcess = server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
    )
    with grpc.insecure_channel(server.grpc_target) as chan:
        stub = model_service_pb2_grpc.ModelServiceStub(chan)
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add()
        entry.name = "three"
        entry.base_path = str(testdata / "saved_model_half_plus_three")
        entry.model_platform = "tensorflow"
        reply = stub.HandleReloadConfigRequest(request, timeout=60)
        assert reply.status.error_code == 0, reply.status.error_message

        predict = prediction_service_pb2_grpc.PredictionServiceStub(chan)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "three"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]], dtype=tf.float32))
        out = predict.Predict(req, timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(out.outputs["y"]), [[3.5]])
        req.model_spec.name = "half_plus_two"
        with pytest.raises(grpc.RpcError) as info:
            predict.Predict(req, timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        bad = model_management_pb2.ReloadConfigRequest()
        bad.config.CopyFrom(model_server_config_pb2.ModelServerConfig())
        bad_entry = bad.config.model_config_list.config.add()
        bad_entry.name = "no_path"
        assert stub.HandleReloadConfigRequest(bad, timeout=60).status.error_code == 3
    assert server.terminate() == 0
