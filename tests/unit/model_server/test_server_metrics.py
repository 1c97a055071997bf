"""Metrics the autoscaler reads: idle models at 0 rather than absent, and the process CPU time."""

from __future__ import annotations

import os
from pathlib import Path

from fake_servable import FakeServable
from modelship_server.core.config import ModelConfig, VersionPolicy
from modelship_server.core.inference import InferenceService
from modelship_server.core.manager import ModelManager
from modelship_server.core.metrics import ServerMetrics


def _sample_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name]


def _service(tmp_path: Path, versions: list[str]) -> tuple[InferenceService, ServerMetrics]:
    for version in versions:
        (tmp_path / version).mkdir()
    manager = ModelManager(lambda path: FakeServable(), poll_seconds=0)
    manager.set_config([ModelConfig("m", str(tmp_path), VersionPolicy())])
    manager.sync()
    metrics = ServerMetrics()
    return InferenceService(manager, metrics), metrics


def test_a_loaded_idle_model_reads_zero_in_flight_queued_and_served(tmp_path: Path) -> None:
    service, metrics = _service(tmp_path, ["1"])
    text = metrics.registry.render().decode()
    service.stop()
    # rate() counts a first burst only if the series was scraped before it
    assert _sample_lines(text, ":tensorflow:serving:request_count") == [
        ':tensorflow:serving:request_count{model_name="m",status="OK"} 0'
    ]
    assert _sample_lines(text, "modelship_server_inflight_requests") == [
        'modelship_server_inflight_requests{model_name="m"} 0'
    ]
    assert _sample_lines(text, "modelship_server_queue_depth") == [
        'modelship_server_queue_depth{model_name="m"} 0'
    ]


def test_a_model_with_no_version_loaded_has_no_sample(tmp_path: Path) -> None:
    service, metrics = _service(tmp_path, [])
    text = metrics.registry.render().decode()
    service.stop()
    assert _sample_lines(text, ":tensorflow:serving:request_count") == []
    assert _sample_lines(text, "modelship_server_inflight_requests") == []
    assert _sample_lines(text, "modelship_server_queue_depth") == []


def _cpu_seconds(text: str) -> float:
    (line,) = _sample_lines(text, "process_cpu_seconds_total")
    return float(line.split(" ")[1])


def _burn(seconds: float) -> None:
    """Spend CPU as the metric counts it (os.times, in clock ticks), so the two agree."""
    start = sum(os.times()[:2])
    while sum(os.times()[:2]) - start < seconds:
        sum(range(1000))


def test_process_cpu_seconds_is_a_counter_of_this_process() -> None:
    metrics = ServerMetrics()
    before_own = sum(os.times()[:2])
    first = _cpu_seconds(metrics.registry.render().decode())
    _burn(0.2)
    text = metrics.registry.render().decode()
    after_own = sum(os.times()[:2])
    assert "# TYPE process_cpu_seconds_total counter" in text
    assert before_own <= first
    assert first + 0.2 <= _cpu_seconds(text) <= after_own


def test_process_cpu_seconds_of_worker_processes_are_summed() -> None:
    metrics = ServerMetrics()
    peer = {"process_cpu_seconds_total": [[[], 1234.5]]}
    own_before = sum(os.times()[:2])
    summed = _cpu_seconds(metrics.registry.render([peer, peer]).decode())
    own_after = sum(os.times()[:2])
    # The sum is taken in another order than here: allow for float rounding, nothing more.
    slack = 1e-6
    assert own_before + 2 * 1234.5 - slack <= summed <= own_after + 2 * 1234.5 + slack
    snapshot = metrics.registry.snapshot()["process_cpu_seconds_total"]
    assert len(snapshot) == 1
    assert snapshot[0][0] == []
