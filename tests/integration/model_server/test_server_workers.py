"""--workers: several server processes on one port, summed metrics, restarts and shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest
from conftest import ServerFactory
from server_process import ServerProcess, free_port, metric_value
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu"


def _workers(server: ServerProcess) -> set[int]:
    pid = server.proc.pid
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def _exited(pid: int) -> bool:
    """Gone or a zombie: either way its sockets are closed."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"not in {timeout}s: {what}")


def _predict_on_new_connection(server: ServerProcess, value: float) -> list[list[float]]:
    # A connection per request: the kernel spreads connections, not requests, over workers.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        reply = client.post(
            "/v1/models/half_plus_two:predict", json={"instances": [[value]]}
        ).raise_for_status()
    predictions: list[list[float]] = reply.json()["predictions"]
    return predictions


def _start(factory: ServerFactory, testdata: Path) -> ServerProcess:
    return factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata / HALF_PLUS_TWO}",
        "--workers=2",
        "--enable_batching",
    )


def test_workers_share_the_port_and_sum_their_metrics(
    server_factory: ServerFactory, testdata: Path
) -> None:
    server = _start(server_factory, testdata)
    _wait_for(lambda: len(_workers(server)) == 2, 60, "two worker processes")
    for i in range(40):
        assert _predict_on_new_connection(server, float(i)) == [[i / 2 + 2]]

    def every_scrape_counts_all() -> bool:
        # Each scrape reaches one worker; each must report the other's requests too.
        counts = set()
        for _ in range(6):
            with httpx.Client(base_url=server.url, timeout=10) as client:
                text = client.get("/metrics").text
            counts.add(
                metric_value(text, ":tensorflow:serving:request_count", model_name="half_plus_two")
            )
        return counts == {40.0}

    _wait_for(every_scrape_counts_all, 15, "request_count of 40 from every worker")

    # Each worker loaded the one version; it is still one version, not two.
    text = httpx.get(f"{server.url}/metrics").text
    assert metric_value(text, "modelship_server_model_versions_available") == 1.0

    # A reload would reach one worker only: refused, with the reason.
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add()
        entry.name = "other"
        entry.base_path = str(testdata / HALF_PLUS_TWO)
        reply = stub.HandleReloadConfigRequest(request, timeout=30)
    assert reply.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "--workers" in reply.status.error_message
    assert server.terminate() == 0


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(
    server_factory: ServerFactory, testdata: Path
) -> None:
    server = _start(server_factory, testdata)
    _wait_for(lambda: len(_workers(server)) == 2, 60, "two worker processes")
    # Past the supervisor's start-up window, after which a death means a restart.
    time.sleep(10)
    first, second = sorted(_workers(server))
    subprocess.run(["kill", "-KILL", str(first)], check=True)
    _wait_for(lambda: _exited(first), 30, "the killed worker to exit")
    _wait_for(
        lambda: len(_workers(server)) == 2 and first not in _workers(server),
        60,
        "a new worker in place of the killed one",
    )
    replacement = (_workers(server) - {second}).pop()
    _wait_for(lambda: httpx.get(f"{server.url}/v2/health/ready").status_code == 200, 60, "ready")
    # While the replacement starts, the kernel may still hand it or the dead one's queue a
    # connection and reset it (seen on a loaded machine); once it serves, every new connection
    # is answered, whichever worker takes it.
    for i in range(10):
        assert _predict_on_new_connection(server, float(i)) == [[i / 2 + 2]]
    assert "exited with -9: starting it again" in server.log.read_text()

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    for pid in (second, replacement):
        assert _exited(pid)


def test_a_taken_port_fails_at_once(
    server_factory: ServerFactory, testdata: Path, tmp_path: Path
) -> None:
    running = _start(server_factory, testdata)
    model = [f"--model_base_path={testdata / HALF_PLUS_TWO}", "--host=127.0.0.1"]
    taken = [f"--rest_api_port={running.rest_port}", f"--port={free_port()}"]
    for workers in ("--workers=2", "--workers=1"):
        log = tmp_path / f"clash{workers[-1]}.log"
        with log.open("wb") as out:
            code = subprocess.run(
                [sys.executable, "-m", "modelship_server", *model, *taken, workers],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            ).returncode
        assert code == 1, log.read_text()
        assert "cannot listen" in log.read_text()
    # The running server never noticed, and still has both its workers.
    assert _predict_on_new_connection(running, 1.0) == [[2.5]]
    assert len(_workers(running)) == 2
