"""Dynamic batching, the bounded queue, metrics and graceful shutdown, on a slow model."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import grpc
import httpx
import pytest
import tensorflow as tf
from conftest import ServerFactory
from server_process import ServerProcess, metric_value, save_slow_model
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

BATCHED = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("slow")
    save_slow_model(base / "1")
    return base


def _start(factory: ServerFactory, model: Path, folder: Path, batching: str) -> ServerProcess:
    params = folder / "batching.config"
    params.write_text(batching)
    return factory(
        "--model_name=slow",
        f"--model_base_path={model}",
        "--enable_batching",
        f"--batching_parameters_file={params}",
        "--shutdown_grace_seconds=30",
    )


def _predict(url: str, value: float) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/slow:predict", json={"instances": [[value]]}, timeout=60)


def _wait_inflight(server: ServerProcess, count: int) -> None:
    def check(client: httpx.Client) -> bool:
        text = client.get(BATCHED).text
        return metric_value(text, "modelship_server_inflight_requests", model_name="slow") >= count

    server.wait_until(check, timeout=30)


def test_concurrent_requests_share_batches(
    server_factory: ServerFactory, slow_model: Path, tmp_path: Path
) -> None:
    server = _start(server_factory, slow_model, tmp_path, "max_batch_size { value: 32 }\n")
    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        first = pool.submit(_predict, server.url, 0.0)
        _wait_inflight(server, 1)  # the first batch (of one) is running now
        rest = [pool.submit(_predict, server.url, float(i)) for i in range(1, 9)]
        replies = [first.result(), *(f.result() for f in rest)]
    assert [r.json()["predictions"] for r in replies] == [[[2.0 * i]] for i in range(9)]
    text = httpx.get(f"{server.url}/metrics").text
    pool_label = {"thread_pool_name": "slow"}
    batches = metric_value(
        text, ":tensorflow:serving:batching_session:input_batch_size_count", **pool_label
    )
    rows = metric_value(
        text, ":tensorflow:serving:batching_session:input_batch_size_sum", **pool_label
    )
    assert rows == 9
    assert batches == 2  # one lone request, then the eight that queued behind it
    assert (
        metric_value(text, ":tensorflow:serving:request_count", model_name="slow", status="OK") == 9
    )
    assert server.terminate() == 0


def test_full_queue_answers_429_and_resource_exhausted(
    server_factory: ServerFactory, slow_model: Path, tmp_path: Path
) -> None:
    server = _start(
        server_factory,
        slow_model,
        tmp_path,
        "max_batch_size { value: 1 }\nmax_enqueued_batches { value: 1 }\n",
    )
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        first = pool.submit(_predict, server.url, 1.0)
        _wait_inflight(server, 1)
        others = [pool.submit(_predict, server.url, 1.0) for _ in range(5)]
        replies = [first.result(), *(f.result() for f in others)]
        codes = sorted(r.status_code for r in replies)
        assert codes.count(429) >= 3, codes
        assert codes.count(200) >= 2, codes
        for reply in replies:
            if reply.status_code == 429:
                assert "queue" in reply.json()["error"]

        def grpc_predict() -> grpc.StatusCode:
            with grpc.insecure_channel(server.grpc_target) as chan:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(chan)
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "slow"
                request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]], dtype=tf.float32))
                try:
                    stub.Predict(request, timeout=60)
                except grpc.RpcError as exc:
                    return exc.code()  # type: ignore[no-any-return]
                return grpc.StatusCode.OK

        first = pool.submit(_predict, server.url, 1.0)
        _wait_inflight(server, 1)
        statuses = [f.result() for f in [pool.submit(grpc_predict) for _ in range(5)]]
        assert statuses.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 3, statuses
        assert first.result().status_code == 200
    # Still serving afterwards.
    assert _predict(server.url, 3.0).json() == {"predictions": [[6.0]]}
    assert server.terminate() == 0


def test_sigterm_drains_in_flight_requests(
    server_factory: ServerFactory, slow_model: Path, tmp_path: Path
) -> None:
    server = _start(server_factory, slow_model, tmp_path, "max_batch_size { value: 1 }\n")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(_predict, server.url, float(i)) for i in range(3)]
        _wait_inflight(server, 3)
        started = time.monotonic()
        server.proc.terminate()  # SIGTERM
        time.sleep(0.2)
        with pytest.raises(httpx.HTTPError):  # the listener is closed: no new work is taken
            httpx.get(f"{server.url}/v2/health/ready", timeout=5)
        replies = [f.result() for f in futures]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert [r.json()["predictions"] for r in replies] == [[[0.0]], [[2.0]], [[4.0]]]
    assert server.proc.wait(60) == 0
    assert time.monotonic() - started < 30
