"""One autoscaler tick over many objects: queries per kind, decisions, held states."""

from __future__ import annotations

from typing import Any

from modelship_operator.api.modeldeployment import Autoscaling
from modelship_operator.autoscaling.prometheus import PrometheusUnavailable, QueryError, Sample
from modelship_operator.controller.autoscaler import Autoscaler, Target
from modelship_operator.controller.scaling import ScaleState


class FakePrometheus:
    """Answers each query from a table of {metric name in the query: {(ns, md): value}}."""

    def __init__(self, series: dict[str, dict[tuple[str, str], float]]) -> None:
        self.series = series
        self.sent: list[str] = []
        self.down = False

    def query(self, promql: str) -> list[Sample]:
        self.sent.append(promql)
        if self.down:
            raise PrometheusUnavailable("cannot reach http://prom:9090: connection refused")
        if "syntax error here" in promql:
            raise QueryError(
                "bad", query=promql, error="1:5: parse error: unexpected", error_type="bad_data"
            )
        for name, values in self.series.items():
            if name in promql:
                return [
                    Sample({"namespace": ns, "modeldeployment": md}, value)
                    for (ns, md), value in values.items()
                ]
        return []


def _target(name: str, current: int = 1, ready: int = 1, **autoscaling: Any) -> Target:
    spec = Autoscaling.model_validate({"maxReplicas": 10, "target": 10, **autoscaling})
    return Target(("ns", name), spec, current=current, ready_pods=ready, cpu_request=0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_query_per_metric_kind_whatever_the_number_of_objects() -> None:
    inflight = {("ns", f"m{i}"): 5.0 for i in range(50)}
    rps = {("ns", f"r{i}"): 5.0 for i in range(50)}
    prom = FakePrometheus({"modelship_server_inflight_requests": inflight, "request_count": rps})
    scaler = Autoscaler(prom, clock=Clock())
    targets = [_target(f"m{i}") for i in range(50)]
    targets += [_target(f"r{i}", metric="requestsPerSecond") for i in range(50)]
    states = scaler.tick(targets, {})
    assert len(prom.sent) == 2
    assert scaler.queries_last_tick == 2
    assert all(s.problem is None and s.desired == 1 for s in states.values())


def test_a_burst_scales_up_at_once_then_nothing_changes() -> None:
    prom = FakePrometheus({"modelship_server_inflight_requests": {("ns", "m"): 45.0}})
    clock = Clock()
    scaler = Autoscaler(prom, clock=clock, wall=lambda: "2026-12-02T06:00:00Z")
    state = scaler.tick([_target("m")], {})[("ns", "m")]
    assert state.desired == 5  # ceil(45 / 10), panic: 4.5x the target skips the up window
    assert state.reason == "ScaledUp"
    assert state.message.startswith("1 → 5: inflightRequests 45 per pod, target 10")
    assert state.scaled_at == "2026-12-02T06:00:00Z"
    clock.now += 1
    again = scaler.tick([_target("m", current=5, ready=5)], {("ns", "m"): state})
    assert again[("ns", "m")] is state


def test_prometheus_down_holds_replicas_and_recovery_clears_it() -> None:
    prom = FakePrometheus({"modelship_server_inflight_requests": {("ns", "m"): 20.0}})
    clock = Clock()
    scaler = Autoscaler(prom, clock=clock)
    first = scaler.tick([_target("m", current=2, ready=2)], {})
    prom.down = True
    clock.now += 1
    held = scaler.tick([_target("m", current=2, ready=2)], first)[("ns", "m")]
    assert held.desired == 2
    assert held.problem_reason == "PrometheusUnavailable"
    assert held.problem is not None
    assert "connection refused" in held.problem
    clock.now += 1
    still = scaler.tick([_target("m", current=2, ready=2)], {("ns", "m"): held})
    assert still[("ns", "m")] is held  # nothing new to write while it stays down
    prom.down = False
    clock.now += 1
    back = scaler.tick([_target("m", current=2, ready=2)], {("ns", "m"): held})[("ns", "m")]
    assert back.problem is None
    assert back.desired == 2


def test_no_samples_and_no_address_are_reported() -> None:
    scaler = Autoscaler(FakePrometheus({}), clock=Clock())
    state = scaler.tick([_target("m", current=3, ready=3)], {})[("ns", "m")]
    assert (state.desired, state.problem_reason) == (3, "NoData")
    assert state.problem is not None
    assert "ns/m" in state.problem
    unconfigured = Autoscaler(None, clock=Clock())
    state = unconfigured.tick([_target("m")], {})[("ns", "m")]
    assert state.problem_reason == "PrometheusNotConfigured"


def test_cpu_utilization_is_a_percent_of_the_cpu_request() -> None:
    # 0.8 cores on one pod requesting 0.5 → 160 % against a 50 % target: ceil(160/50) = 4.
    prom = FakePrometheus({"process_cpu_seconds_total": {("ns", "c"): 0.8}})
    scaler = Autoscaler(prom, clock=Clock())
    state = scaler.tick([_target("c", metric="cpuUtilization", target=50)], {})[("ns", "c")]
    assert state.desired == 4
    assert state.value == 160.0


def test_a_bad_user_query_is_named_and_the_good_one_still_decides() -> None:
    prom = FakePrometheus({"my_load": {("ns", "good"): 35.0}})
    scaler = Autoscaler(prom, clock=Clock())
    states = scaler.tick(
        [
            _target("good", metric="promql", promql="sum(my_load)"),
            _target("bad", metric="promql", promql="syntax error here"),
        ],
        {},
    )
    bad = states[("ns", "bad")]
    assert bad.problem_reason == "QueryFailed"
    assert bad.problem is not None
    assert "parse error" in bad.problem
    assert states[("ns", "good")].desired == 4


def test_objects_that_left_autoscaling_are_forgotten() -> None:
    prom = FakePrometheus({"modelship_server_inflight_requests": {("ns", "m"): 5.0}})
    scaler = Autoscaler(prom, clock=Clock())
    scaler.tick([_target("m")], {})
    before: dict[tuple[str, str], ScaleState] = {}
    assert scaler.tick([], before) == {}
    assert prom.sent == [prom.sent[0]]  # no query at all with nothing to scale
