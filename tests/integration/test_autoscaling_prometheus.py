"""The autoscaler's queries against a real Prometheus scraping a real model server.

Prometheus (the distribution's binary) scrapes one modelship-server every second with the target
labels the pods get in a cluster (namespace, modeldeployment, pod), and each metric kind's query,
the combined user PromQL, the isolation of a broken user query and the errors are checked
against it.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from modelship_operator.autoscaling.prometheus import (
    PrometheusClient,
    PrometheusUnavailable,
    QueryError,
)
from modelship_operator.autoscaling.queries import (
    CPU,
    INFLIGHT,
    KINDS,
    P99_LATENCY,
    PROMQL,
    QUEUE_DEPTH,
    REQUESTS_PER_SECOND,
    combined_promql,
    isolate,
    kind_query,
    read_all,
    split_by_key,
)
from storage_servers import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT.parent / "shared" / "testdata" / "tf-serving" / "saved_model_half_plus_two_cpu"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
KEY = ("team-a", "half")
OTHER = ("team-b", "other")
WINDOW = "5s"
T = TypeVar("T")

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: modelship
    static_configs:
      - targets: ["127.0.0.1:{port}"]
        labels:
          namespace: {namespace}
          modeldeployment: {name}
          pod: {name}-7d9f8-abcde
"""


@dataclass
class Served:
    prometheus: PrometheusClient
    server_url: str


def wait_for(read: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll until `read` gives a value (scrapes and rate windows take a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not Path(PROMETHEUS).exists():
        pytest.skip(
            "Prometheus is not installed (Debian package `prometheus`: /usr/bin/prometheus)"
        )
    if not MODEL.is_dir():
        pytest.skip(f"TF Serving reference model not found at {MODEL}")
    root = tmp_path_factory.mktemp("autoscaling-prometheus")
    rest, grpc_port, web = free_port(), free_port(), free_port()
    server = [sys.executable, "-m", "modelship_server", "--host=127.0.0.1"]
    server += [f"--rest_api_port={rest}", f"--port={grpc_port}", "--model_name=half"]
    server += [f"--model_base_path={MODEL}"]
    config = root / "prometheus.yml"
    config.write_text(CONFIG.format(port=rest, namespace=KEY[0], name=KEY[1]))
    prometheus = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}"]
    prometheus += [f"--web.listen-address=127.0.0.1:{web}"]
    with (
        serve(server, rest, root / "server.log"),
        serve(prometheus, web, root / "prometheus.log"),
    ):
        url = f"http://127.0.0.1:{rest}"
        wait_for(lambda: _ok(f"{url}/v2/health/ready"), "the model server is ready", timeout=180)
        client = PrometheusClient(f"http://127.0.0.1:{web}")
        wait_for(lambda: _ok(f"http://127.0.0.1:{web}/-/ready"), "Prometheus is ready")
        wait_for(
            lambda: split_by_key(client.query(kind_query(INFLIGHT, WINDOW))).get(KEY),
            "the first scrape of the server",
        )
        yield Served(client, url)


def _ok(url: str) -> bool | None:
    try:
        return True if httpx.get(url, timeout=2).status_code == 200 else None
    except httpx.HTTPError:
        return None


def _value(client: PrometheusClient, kind: str) -> float | None:
    values, errors = read_all(client, [kind], {}, WINDOW)
    assert errors == {}
    return values[kind].get(KEY)


def test_kinds_read_zero_at_rest(served: Served) -> None:
    client = served.prometheus
    assert _value(client, INFLIGHT) == 0
    assert _value(client, QUEUE_DEPTH) == 0
    # No request yet: p99 reads 0 (idle), not "no data".
    assert wait_for(lambda: _value(client, P99_LATENCY), "p99 of an idle server") == 0


def test_kinds_under_load(served: Served) -> None:
    client = served.prometheus
    stop = threading.Event()
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=served.server_url, timeout=30) as rest:
            i = 0
            while not stop.is_set():
                reply = rest.post("/v1/models/half:predict", json={"instances": [[float(i)]]})
                statuses.append(reply.status_code)
                i += 1
                time.sleep(0.005)

    def positive(kind: str) -> float | None:
        value = _value(client, kind)
        return value if value else None

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        assert wait_for(lambda: positive(REQUESTS_PER_SECOND), "req/s under load") > 0
        assert wait_for(lambda: positive(CPU), "CPU cores in use") > 0
        p99 = wait_for(lambda: positive(P99_LATENCY), "p99 latency under load")
        assert 0 < p99 < 60_000  # milliseconds: a quick model, not microseconds
        # All kinds in one tick: one answer each, every one with the object's key.
        readings = read_all(client, KINDS, {}, WINDOW)
    finally:
        stop.set()
        sender.join()
    assert readings.errors == {}
    assert readings.queries == len(KINDS)
    assert all(readings.value_for(kind, KEY) is not None for kind in KINDS)
    assert statuses
    assert set(statuses) == {200}


def test_user_queries_are_answered_by_one_combined_query(served: Served) -> None:
    queries = {
        KEY: 'modelship_server_inflight_requests{modeldeployment="half"} + 7',
        OTHER: "vector(3)",
    }
    samples = served.prometheus.query(combined_promql(queries))
    assert split_by_key(samples) == {KEY: 7.0, OTHER: 3.0}
    readings = read_all(served.prometheus, [PROMQL], queries, WINDOW)
    assert readings.errors == {}
    assert readings.values[PROMQL] == {KEY: 7.0, OTHER: 3.0}
    assert readings.queries == 1


def test_a_broken_user_query_is_isolated_with_prometheus_error(served: Served) -> None:
    broken = "rate(modelship_server_inflight_requests[5 seconds])"
    queries = {KEY: "vector(2)", OTHER: broken}
    with pytest.raises(QueryError) as refused:
        served.prometheus.query(combined_promql(queries))
    assert refused.value.error_type == "bad_data"

    good, bad = isolate(served.prometheus, queries)
    assert good == {KEY: 2.0}
    assert list(bad) == [OTHER]
    # Prometheus' own explanation of the query as the user wrote it, and the query
    with pytest.raises(QueryError) as alone:
        served.prometheus.query(broken)
    assert alone.value.error in bad[OTHER]
    assert broken in bad[OTHER]

    readings = read_all(served.prometheus, [INFLIGHT, PROMQL], queries, WINDOW)
    assert readings.values[PROMQL] == {KEY: 2.0}
    assert readings.values[INFLIGHT] == {KEY: 0.0}
    assert readings.errors == bad
    assert isinstance(readings.error_for(PROMQL, OTHER), QueryError)
    assert readings.error_for(PROMQL, KEY) is None


def test_a_scalar_user_query_is_refused_for_what_it_returns(served: Served) -> None:
    queries = {KEY: "vector(2)", OTHER: "scalar(vector(5))"}
    values, errors = read_all(served.prometheus, [PROMQL], queries, WINDOW)
    assert values[PROMQL] == {KEY: 2.0}
    assert "instant vector" in errors[OTHER]


def test_an_unbalanced_user_query_is_never_combined(served: Served) -> None:
    # Closing the wrapper early would relabel another object's series; it is refused first.
    sneaky = 'vector(1)), "namespace", "team-a", "", "") or (vector(99)'
    values, errors = read_all(
        served.prometheus, [PROMQL], {OTHER: sneaky, KEY: "vector(2)"}, WINDOW
    )
    assert values[PROMQL] == {KEY: 2.0}
    assert "closes nothing" in errors[OTHER]


def test_a_range_vector_is_refused_with_the_reason(served: Served) -> None:
    with pytest.raises(QueryError, match=r"range vector|matrix"):
        served.prometheus.query("modelship_server_inflight_requests[5s]")


def test_nothing_listening_is_prometheus_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = PrometheusClient(url, timeout=1)
    with pytest.raises(PrometheusUnavailable) as down:
        client.query("vector(1)")
    assert url in str(down.value)
    assert "refused" in str(down.value)
    readings = read_all(client, [INFLIGHT, CPU], {KEY: "vector(1)"}, WINDOW)
    assert readings.values == {}
    assert set(readings.errors) == {INFLIGHT, CPU, PROMQL}
    assert all(url in message for message in readings.errors.values())
    assert isinstance(readings.error_for(INFLIGHT, KEY), PrometheusUnavailable)
    assert isinstance(readings.error_for(PROMQL, KEY), PrometheusUnavailable)
    assert readings.value_for(INFLIGHT, KEY) is None
