"""Run a lone, quick request on the event loop thread instead of handing it to a batch thread.

With nothing else in flight there is nothing to batch with, and the two thread hand-overs (to
the batch thread and back) cost more than a small model's run: on a 2-core machine they were
about a third of a lone half_plus_two request. A run blocks the event loop, so only requests
predicted to be quick run inline: the cost per row is learned from every run, batched or not,
and a signature that has not run yet never runs inline.

"Lone" means more than nothing else in flight: under load, the first request after a batch
finds the server empty too, for a moment, while its companions are still on the wire. Run
inline, it would cost a batch-of-one run per batch and push the rest into the next one. So a
request runs inline only if the previous run of its signature also served a single request.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable

from ..core.types import Servable, Tensors

# Longest a run may be predicted to take and still block the event loop.
INLINE_MAX_SECONDS = 0.001
_SMOOTHING = 0.2  # weight of the newest run in the cost estimate


@dataclasses.dataclass
class _Cost:
    per_row: float  # seconds, smoothed
    last_requests: int  # requests served by the latest run


class InlineRunner:
    def __init__(
        self,
        max_seconds: float = INLINE_MAX_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_seconds = max_seconds
        self._clock = clock
        self._costs: dict[Hashable, _Cost] = {}

    def allows(self, servable: Servable, signature: str, rows: int) -> bool:
        cost = self._costs.get((id(servable), signature))
        return (
            cost is not None
            and cost.last_requests == 1
            and cost.per_row * max(rows, 1) < self.max_seconds
        )

    def timed_run(
        self,
        servable: Servable,
        signature: str,
        inputs: Tensors,
        output_keys: list[str] | None,
        requests: int = 1,
    ) -> Tensors:
        """servable.run, learning its cost (any thread: one dict write, atomic under the GIL)."""
        started = self._clock()
        try:
            return servable.run(signature, inputs, output_keys)
        finally:
            seconds = self._clock() - started
            self.learn(servable, signature, rows_of(inputs), seconds, requests)

    def forget(self, servable: Servable) -> None:
        # Called from the model manager's thread: copy the keys (atomic under the GIL) so runs
        # learning on other threads meanwhile cannot break the iteration.
        for key in [k for k in list(self._costs) if isinstance(k, tuple) and k[0] == id(servable)]:
            self._costs.pop(key, None)

    def learn(
        self, servable: Servable, signature: str, rows: int, seconds: float, requests: int = 1
    ) -> None:
        key = (id(servable), signature)
        sample = seconds / max(rows, 1)  # batches overstate a lone row's cost: the safe side
        old = self._costs.get(key)
        per_row = sample if old is None else old.per_row + _SMOOTHING * (sample - old.per_row)
        self._costs[key] = _Cost(per_row, requests)


def rows_of(inputs: Tensors) -> int:
    """The batch dimension of the first input (0 for a scalar input)."""
    first = next(iter(inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 0
