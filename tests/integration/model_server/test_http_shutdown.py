"""SIGTERM on a real server: uploads under way are finished or answered 503, and the process
exits within --shutdown_grace_seconds even while a batch thread is still inside the model."""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
from conftest import ServerFactory
from server_process import metric_value

GRACE = 2
EXIT_MARGIN = 6  # the process gets this long past the grace period before the test fails


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status(data: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    assert match, data[:200]
    return int(match.group(1))


def _has_connection_close(data: bytes) -> bool:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    return b"\r\nconnection: close" in head


def test_uploads_under_way_at_sigterm_are_finished_or_answered_503(
    server_factory: ServerFactory, testdata: Path
) -> None:
    server = server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata}/saved_model_half_plus_two_cpu",
        f"--shutdown_grace_seconds={GRACE}",
    )
    body = json.dumps({"instances": [1.0, 2.0]}).encode()
    head = (
        f"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    finishing = _connect(server.rest_port)
    stalled = _connect(server.rest_port)
    half = len(body) // 2
    for sock in (finishing, stalled):
        sock.sendall(head + body[:half])
    # Both heads are read once the server has answered a request sent after them.
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    server.proc.terminate()  # SIGTERM
    time.sleep(0.3)
    finishing.sendall(body[half:])
    finished = _read_until_closed(finishing)
    refused = _read_until_closed(stalled)
    assert server.proc.wait(GRACE + EXIT_MARGIN) == 0
    assert _status(finished) == 200
    assert json.loads(finished.split(b"\r\n\r\n", 1)[1]) == {"predictions": [2.5, 3.0]}
    assert _has_connection_close(finished)
    assert _status(refused) == 503
    assert _has_connection_close(refused)


def _save_spinning_model(path: Path) -> None:
    """A SavedModel y = x that first spins a graph loop x times: quick to warm up with zeros,
    and as long as the test wants for a large x."""
    import tensorflow as tf  # noqa: PLC0415  (only this test pays for it)

    class Spin(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])  # type: ignore[misc]
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            turns = tf.cast(tf.reduce_max(tf.abs(x)), tf.int64)
            _, acc = tf.while_loop(
                lambda i, a: i < turns,
                lambda i, a: (i + 1, a + 1.0),
                (tf.constant(0, tf.int64), tf.constant(0.0)),
            )
            return {"y": x + acc * 0.0}

    module = Spin()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def endless_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("endless")
    _save_spinning_model(base / "1")
    return base


def test_exit_within_the_grace_period_while_a_batch_thread_runs(
    server_factory: ServerFactory, endless_model: Path, tmp_path: Path
) -> None:
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 1 }\nnum_batch_threads { value: 1 }\n")
    server = server_factory(
        "--model_name=endless",
        f"--model_base_path={endless_model}",
        "--enable_batching",
        f"--batching_parameters_file={batching}",
        f"--shutdown_grace_seconds={GRACE}",
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reply = pool.submit(
            httpx.post,
            f"{server.url}/v1/models/endless:predict",
            json={"instances": [[1e12]]},  # far longer than the test waits
            timeout=120,
        )

        def running(client: httpx.Client) -> bool:
            text = client.get("/monitoring/prometheus/metrics").text
            return metric_value(text, "modelship_server_inflight_requests") >= 1

        server.wait_until(running, timeout=60)
        server.proc.terminate()  # SIGTERM
        # Without a bound on joining the batch thread, this waits for the model to finish.
        assert server.proc.wait(GRACE + EXIT_MARGIN) == 0
        answer = reply.result()
    assert answer.status_code == 503
    assert answer.headers["connection"] == "close"
