"""Which lone requests run on the event loop: only those whose signature is known to be quick."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from fake_servable import FakeServable
from modelship_server.core.config import BatchingConfig, ModelConfig, VersionPolicy
from modelship_server.core.inference import InferenceService
from modelship_server.core.inline import InlineRunner, rows_of
from modelship_server.core.manager import ModelManager
from modelship_server.core.metrics import ServerMetrics
from modelship_server.core.types import PREDICT_METHOD, Signature, Tensors, TensorSpec


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


class _Recorded(FakeServable):
    """A quick servable with a batchable signature, recording the rows of every run."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    @property
    def signatures(self) -> Mapping[str, Signature]:
        spec = {"x": TensorSpec("x", "DT_FLOAT", (-1, 1))}
        out = {"y": TensorSpec("y", "DT_FLOAT", (-1, 1))}
        return {"serving_default": Signature("serving_default", PREDICT_METHOD, spec, out)}

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        self.calls.append(rows_of(inputs))
        return {"y": inputs["x"] * 2}


def test_requests_arriving_together_are_batched_even_after_a_lone_one(tmp_path: Path) -> None:
    # Under load one inline run (the event loop blocked) used to make the next request find
    # nothing else in flight again: every request then ran inline, one at a time.
    (tmp_path / "1").mkdir()
    model = _Recorded()
    manager = ModelManager(lambda path: model, poll_seconds=0)
    manager.set_config([ModelConfig("m", str(tmp_path), VersionPolicy())])
    manager.sync()
    service = InferenceService(manager, ServerMetrics(), BatchingConfig(max_batch_size=8))
    service.start()

    async def body() -> None:
        resolved = service.resolve("m")
        signature = service.signature(resolved, None)

        async def one() -> Tensors:
            return await service.run(resolved, signature, {"x": np.ones((1, 1), np.float32)})

        await one()  # learns the cost: a batch thread run
        await one()  # lone and quick: inline
        await asyncio.gather(*(one() for _ in range(4)))  # arriving together

    try:
        asyncio.run(body())
    finally:
        service.stop()
    assert model.calls[:2] == [1, 1]
    assert sum(model.calls[2:]) == 4
    assert len(model.calls) < 6  # the four were batched, not each run on its own
