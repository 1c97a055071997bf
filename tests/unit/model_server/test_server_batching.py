"""The batch scheduler with a fake servable: merging, splitting, lone requests, bounds."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from fake_servable import FakeServable
from modelship_server.core import batching
from modelship_server.core.batching import BatchScheduler
from modelship_server.core.config import BatchingConfig
from modelship_server.core.errors import Code, ServingError
from modelship_server.core.metrics import ServerMetrics
from modelship_server.core.types import Tensors


class Doubler(FakeServable):
    """y = 2x, recording each batch it was called with; can be held to build a queue."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def hold(self) -> None:
        """Hold runs at their start; `entered` then tells when the next one got there (a run
        before the hold must not count: the batch thread may not have taken the next yet)."""
        self.entered.clear()
        self.gate.clear()

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        self.entered.set()
        self.gate.wait(10)
        x = inputs["x"]
        if np.any(x < 0):
            raise ServingError(Code.INVALID_ARGUMENT, "negative input")
        self.calls.append(int(x.shape[0]))
        return {"y": x * 2}


def _run(config: BatchingConfig, body: object) -> tuple[ServerMetrics, object]:
    metrics = ServerMetrics()
    scheduler = BatchScheduler(config, metrics)
    scheduler.start()
    try:
        result = asyncio.run(body(scheduler))  # type: ignore[operator]
    finally:
        scheduler.stop()
    return metrics, result


def test_queued_requests_are_merged_and_split_back() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> list[Tensors]:
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.array([[1.0]])}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        rest = [
            scheduler.submit("m", model, "s", {"x": np.full((n, 1), float(n))}, None)
            for n in (1, 2, 3)
        ]
        model.gate.set()
        return await asyncio.gather(first, *rest)

    metrics, results = _run(BatchingConfig(max_batch_size=8), body)
    assert model.calls == [1, 6]
    outs = [r["y"].reshape(-1).tolist() for r in results]  # type: ignore[attr-defined]
    assert outs == [[2.0], [2.0], [4.0, 4.0], [6.0, 6.0, 6.0]]
    assert metrics.input_batch_size.count(("m",)) == 2


def test_a_lone_request_does_not_wait_for_the_timeout() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> float:
        started = time.perf_counter()
        await scheduler.submit("m", model, "s", {"x": np.array([[1.0]])}, None)
        return time.perf_counter() - started

    _, elapsed = _run(BatchingConfig(max_batch_size=8, batch_timeout_micros=5_000_000), body)
    assert elapsed < 2.0  # far below the 5 s timeout
    assert model.calls == [1]


def test_batches_respect_max_size_and_pad_to_allowed_sizes() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> list[Tensors]:
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.array([[0.5]])}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        rest = [
            scheduler.submit("m", model, "s", {"x": np.array([[float(i)]])}, None) for i in range(5)
        ]
        model.gate.set()
        return await asyncio.gather(first, *rest)

    config = BatchingConfig(max_batch_size=4, allowed_batch_sizes=(2, 4))
    _metrics, results = _run(config, body)
    # 1 alone padded to 2; then 4; then 1 padded to 2.
    assert model.calls == [2, 4, 2]
    assert [float(r["y"][0, 0]) for r in results] == [1.0, 0.0, 2.0, 4.0, 6.0, 8.0]  # type: ignore[index]
    assert all(r["y"].shape == (1, 1) for r in results)  # type: ignore[index]


def test_a_bad_request_fails_alone() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> list[object]:
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.array([[1.0]])}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        good = scheduler.submit("m", model, "s", {"x": np.array([[2.0]])}, None)
        bad = scheduler.submit("m", model, "s", {"x": np.array([[-1.0]])}, None)
        model.gate.set()
        return await asyncio.gather(first, good, bad, return_exceptions=True)

    _, results = _run(BatchingConfig(max_batch_size=8), body)
    _first, good, bad = results  # type: ignore[misc]
    assert float(good["y"][0, 0]) == 4.0
    assert isinstance(bad, ServingError)
    assert bad.code is Code.INVALID_ARGUMENT


def test_full_queue_refuses_with_resource_exhausted() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> None:
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.array([[1.0]])}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        queued = scheduler.submit("m", model, "s", {"x": np.array([[1.0], [1.0]])}, None)
        with pytest.raises(ServingError) as info:
            scheduler.submit("m", model, "s", {"x": np.array([[1.0]])}, None)
        assert info.value.code is Code.RESOURCE_EXHAUSTED
        model.gate.set()
        await asyncio.gather(first, queued)

    metrics, _ = _run(BatchingConfig(max_batch_size=2, max_enqueued_batches=1), body)
    assert metrics.queue_depth.value(("m",)) == 0


def test_incompatible_shapes_are_not_merged() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> list[Tensors]:
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        a = scheduler.submit("m", model, "s", {"x": np.ones((1, 2))}, None)
        b = scheduler.submit("m", model, "s", {"x": np.ones((1, 3))}, None)
        model.gate.set()
        return await asyncio.gather(first, a, b)

    _, results = _run(BatchingConfig(max_batch_size=8), body)
    assert model.calls == [1, 1, 1]
    assert [r["y"].shape for r in results] == [(1, 1), (1, 2), (1, 3)]  # type: ignore[index]


def test_under_steady_load_a_batch_waits_for_as_many_rows_as_the_last() -> None:
    model = Doubler()

    async def body(scheduler: BatchScheduler) -> None:
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        wave = [scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None) for _ in range(3)]
        model.gate.set()
        await asyncio.gather(first, *wave)
        # The next wave trickles in: the batch thread holds the first for the other two.
        lead = scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        await asyncio.sleep(0.1)
        rest = [scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None) for _ in range(2)]
        await asyncio.gather(lead, *rest)

    _run(BatchingConfig(max_batch_size=8, batch_timeout_micros=1_000_000), body)
    assert model.calls == [1, 3, 3]


def test_without_a_timeout_load_waits_for_company_and_a_lone_request_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waits long enough that a loaded test machine cannot make the company late.
    monkeypatch.setattr(batching, "ADAPTIVE_WAIT_MIN", 0.5)
    monkeypatch.setattr(batching, "ADAPTIVE_WAIT_MAX", 1.0)

    class Slow(Doubler):
        """Runs take 0.2 s: requests right after a run count as load, as on a real model."""

        def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
            time.sleep(0.2)
            return super().run(signature, inputs, output_keys)

    model = Slow()

    async def body(scheduler: BatchScheduler) -> float:
        # A lone request: the queue has no history of batches of many, so it runs at once.
        await scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        model.hold()
        first = scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        await asyncio.to_thread(model.entered.wait, 5)
        wave = [scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None) for _ in range(3)]
        model.gate.set()
        await asyncio.gather(first, *wave)
        # Under load (the last batch served 3 requests) the next one waits, briefly, for two
        # more that arrive a moment later.
        lead = scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        await asyncio.sleep(0.05)
        rest = [scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None) for _ in range(2)]
        await asyncio.gather(lead, *rest)
        # The load is gone: a request long after the last batch runs at once.
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        await scheduler.submit("m", model, "s", {"x": np.ones((1, 1))}, None)
        return time.perf_counter() - started

    _, alone = _run(BatchingConfig(max_batch_size=8), body)
    assert model.calls == [1, 1, 3, 3, 1]
    assert alone < 0.2 + 0.4  # its run, and no adaptive wait (at least 0.5 s here)
