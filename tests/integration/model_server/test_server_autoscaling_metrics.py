"""The metrics the operator's autoscaler reads, from real servers: idle zeros and CPU time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from conftest import ServerFactory
from server_process import ServerProcess, metric_value

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu"
TICKS = os.sysconf("SC_CLK_TCK")


def _samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process, as the kernel counts them."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _workers(server: ServerProcess) -> list[int]:
    pid = server.proc.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_idle_model_exports_zero_gauges_and_cpu_time(
    server_factory: ServerFactory, testdata: Path
) -> None:
    server = server_factory(
        "--model_name=half_plus_two", f"--model_base_path={testdata / HALF_PLUS_TWO}"
    )
    text = httpx.get(f"{server.url}/metrics").text
    assert _samples(text, "modelship_server_inflight_requests") == [
        'modelship_server_inflight_requests{model_name="half_plus_two"} 0'
    ]
    assert _samples(text, "modelship_server_queue_depth") == [
        'modelship_server_queue_depth{model_name="half_plus_two"} 0'
    ]
    # The server adds user and system time as floats, /proc in clock ticks: allow rounding.
    rounding = 1e-6
    before = metric_value(text, "process_cpu_seconds_total")
    assert 0 < before <= _cpu_seconds(server.proc.pid) + rounding
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(200):
            client.post("/v1/models/half_plus_two:predict", json={"instances": [[float(i)]]})
        after = metric_value(client.get("/metrics").text, "process_cpu_seconds_total")
    assert before < after <= _cpu_seconds(server.proc.pid) + rounding
    assert server.terminate() == 0


def test_workers_cpu_time_is_summed(server_factory: ServerFactory, testdata: Path) -> None:
    server = server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata / HALF_PLUS_TWO}",
        "--workers=2",
    )
    deadline = time.monotonic() + 60
    while len(_workers(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _workers(server)
    assert len(workers) == 2
    floor = sum(_cpu_seconds(pid) for pid in workers)
    time.sleep(2.5)  # every worker publishes its counts each second
    text = httpx.get(f"{server.url}/metrics").text
    ceiling = sum(_cpu_seconds(pid) for pid in workers)
    # One worker's own time would be about half: each loaded TensorFlow and the model.
    summed = metric_value(text, "process_cpu_seconds_total")
    assert floor - 1e-6 <= summed <= ceiling + 1e-6  # float sums against /proc's clock ticks
    assert server.terminate() == 0
