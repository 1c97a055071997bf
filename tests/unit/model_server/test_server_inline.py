"""Which lone requests run on the event loop: only those whose signature is known to be quick."""

from __future__ import annotations

import numpy as np
from fake_servable import FakeServable
from modelship_server.core.inline import InlineRunner, rows_of
from modelship_server.core.types import Tensors


class _Clocked(FakeServable):
    """A servable whose run takes a set time per row (on a fake clock advanced by run)."""

    def __init__(self, clock: list[float], seconds_per_row: float) -> None:
        self._clock = clock
        self.seconds_per_row = seconds_per_row
        self.runs = 0

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        self.runs += 1
        self._clock[0] += self.seconds_per_row * rows_of(inputs)
        return {"y": inputs["x"] * 2}


def _runner_on(clock: list[float]) -> InlineRunner:
    return InlineRunner(max_seconds=0.001, clock=lambda: clock[0])


def test_unknown_signatures_never_run_inline() -> None:
    clock = [0.0]
    runner = _runner_on(clock)
    quick = _Clocked(clock, 0.0001)
    assert not runner.allows(quick, "serving_default", 1)
    out = runner.timed_run(quick, "serving_default", {"x": np.ones((2, 1))}, None)
    assert out["y"].tolist() == [[2.0], [2.0]]
    assert runner.allows(quick, "serving_default", 1)
    assert runner.allows(quick, "serving_default", 9)
    assert not runner.allows(quick, "serving_default", 10)  # 10 x 0.1 ms is not under 1 ms
    assert not runner.allows(quick, "other_signature", 1)
    # After a batch of several requests, more are coming: the next one is batched, not inline.
    runner.timed_run(quick, "serving_default", {"x": np.ones((4, 1))}, None, requests=4)
    assert not runner.allows(quick, "serving_default", 1)
    runner.timed_run(quick, "serving_default", {"x": np.ones((1, 1))}, None, requests=1)
    assert runner.allows(quick, "serving_default", 1)


def test_slow_models_stay_off_the_event_loop() -> None:
    clock = [0.0]
    runner = _runner_on(clock)
    slow = _Clocked(clock, 0.05)
    runner.learn(slow, "serving_default", 1, 0.05)
    assert not runner.allows(slow, "serving_default", 1)
    # A model that became quick (say, caches warmed) is let in as the estimate follows it.
    slow.seconds_per_row = 0.0001
    for _ in range(40):
        runner.timed_run(slow, "serving_default", {"x": np.ones((1, 1))}, None)
    assert runner.allows(slow, "serving_default", 1)
    runner.forget(slow)
    assert not runner.allows(slow, "serving_default", 1)


def test_rows_of() -> None:
    assert rows_of({"x": np.zeros((3, 4))}) == 3
    assert rows_of({"x": np.float32(1.0)}) == 0
    assert rows_of({}) == 0
