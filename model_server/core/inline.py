"""Run a lone, quick request on the event loop thread instead of handing it to a batch thread.

With nothing else in flight there is nothing to batch with, and the two thread hand-overs (to
the batch thread and back) cost more than a small model's run: on a 2-core machine they were
about a third of a lone half_plus_two request. A run blocks the event loop, so only requests
predicted to be quick run inline: the cost per row is learned from every run, batched or not,
and a signature that has not run yet never runs inline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from ..core.types import Servable, Tensors

# Longest a run may be predicted to take and still block the event loop.
INLINE_MAX_SECONDS = 0.001
_SMOOTHING = 0.2  # weight of the newest run in the cost estimate


class InlineRunner:
    def __init__(
        self,
        max_seconds: float = INLINE_MAX_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_seconds = max_seconds
        self._clock = clock
        self._per_row: dict[Hashable, float] = {}  # seconds per row, smoothed

    def allows(self, servable: Servable, signature: str, rows: int) -> bool:
        per_row = self._per_row.get((id(servable), signature))
        return per_row is not None and per_row * max(rows, 1) < self.max_seconds

    def run(
        self, servable: Servable, signature: str, inputs: Tensors, output_keys: list[str] | None
    ) -> Tensors:
        return self.timed_run(servable, signature, inputs, output_keys)

    def timed_run(
        self, servable: Servable, signature: str, inputs: Tensors, output_keys: list[str] | None
    ) -> Tensors:
        """servable.run, learning its cost (any thread: one dict write, atomic under the GIL)."""
        started = self._clock()
        try:
            return servable.run(signature, inputs, output_keys)
        finally:
            self.learn(servable, signature, rows_of(inputs), self._clock() - started)

    def forget(self, servable: Servable) -> None:
        for key in [k for k in self._per_row if isinstance(k, tuple) and k[0] == id(servable)]:
            del self._per_row[key]

    def learn(self, servable: Servable, signature: str, rows: int, seconds: float) -> None:
        key = (id(servable), signature)
        sample = seconds / max(rows, 1)  # batches overstate a lone row's cost: the safe side
        old = self._per_row.get(key)
        self._per_row[key] = sample if old is None else old + _SMOOTHING * (sample - old)


def rows_of(inputs: Tensors) -> int:
    """The batch dimension of the first input (0 for a scalar input)."""
    first = next(iter(inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 0
