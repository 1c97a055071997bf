"""Dynamic batching: concurrent requests for one signature are merged, run once, and split back.

Requests come from event-loop threads (REST and gRPC alike) and get an asyncio future; batch
threads own every TensorFlow call, so the event loop only parses and serializes. TensorFlow
releases the GIL while it computes, which lets parsing overlap with the model.

Scheduling, per queue (one per servable, signature and output selection):
- a lone request runs at once: a request reaching a queue that has been idle for longer than
  `batch_timeout_micros` does not wait for company; with no timeout set (0, the default) a
  request runs at once unless the previous batch served more than one request;
- under load, the tasks already queued are merged up to `max_batch_size` rows, and the thread
  may wait for as many rows as the previous batch had, since in steady load that many requests
  come back round: up to `batch_timeout_micros` from the oldest task, or with no timeout set,
  up to three times as long as the previous batch ran (1 to 5 ms), counted from when the
  thread is ready. Taking only whoever came first let batches shrink under load (on 2 CPUs an
  MLP at 64 clients ran batches of ~11 rows, where a row costs nearly three times what it does
  in a batch of 64; now ~50-60). While the event loop is the bottleneck the wait costs no
  throughput, and it ends as soon as the target is there;
- at most `max_enqueued_batches * max_batch_size` rows wait per queue; beyond that a request is
  refused with RESOURCE_EXHAUSTED instead of growing memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Hashable

import numpy as np

from ..core.config import BatchingConfig
from ..core.errors import Code, ServingError
from ..core.inline import InlineRunner, rows_of
from ..core.metrics import ServerMetrics
from ..core.types import Servable, Tensors

log = logging.getLogger(__name__)

_Outcome = Tensors | ServingError

# With batch_timeout_micros 0, how long a batch thread may wait under load for its target rows:
# three times the previous batch's run time, within these bounds.
ADAPTIVE_WAIT_MIN = 0.001
ADAPTIVE_WAIT_MAX = 0.005


@dataclasses.dataclass(eq=False)
class _Task:
    inputs: Tensors
    rows: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Tensors]
    enqueued: float
    trailing: tuple[tuple[int, ...], ...]


@dataclasses.dataclass(eq=False)
class _Queue:
    key: Hashable
    model_name: str
    servable: Servable
    signature: str
    output_keys: list[str] | None
    tasks: collections.deque[_Task] = dataclasses.field(default_factory=collections.deque)
    rows: int = 0
    busy: bool = False  # a batch thread is filling it: others leave it alone
    last_rows: int = 0  # rows in the previous batch: the size to wait for under steady load
    last_done: float = 0.0  # when the previous batch finished (perf_counter)
    target: int = 0  # rows the filling thread is waiting for (while busy)
    last_requests: int = 0  # requests in the previous batch
    last_run: float = 0.0  # seconds the previous batch took to run


def _deliver(results: list[tuple[asyncio.Future[Tensors], _Outcome]]) -> None:
    for future, outcome in results:
        if future.done():  # cancelled: the client went away or timed out
            continue
        if isinstance(outcome, ServingError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _send(tasks: list[_Task], outcomes: list[_Outcome]) -> None:
    """Resolve futures with one wake-up per event loop, not one per task."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Tensors], _Outcome]]] = {}
    for task, outcome in zip(tasks, outcomes, strict=True):
        by_loop.setdefault(task.loop, []).append((task.future, outcome))
    for loop, results in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(_deliver, results)


class BatchScheduler:
    def __init__(
        self, config: BatchingConfig, metrics: ServerMetrics, runner: InlineRunner | None = None
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._runner = runner or InlineRunner()  # times each run, for the inline decision
        self._cv = threading.Condition()
        self._queues: dict[Hashable, _Queue] = {}
        self._ready: collections.deque[_Queue] = collections.deque()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._worker, name=f"batch-{i}", daemon=True)
            for i in range(max(config.num_batch_threads, 1))
        ]
        self._max_queued_rows = max(config.max_enqueued_batches, 1) * config.max_batch_size
        metrics.queue_depth.set_callback(self._depths)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def forget(self, servable: Servable) -> None:
        """Drop the queues of an unloaded servable (their tasks still run to completion)."""
        with self._cv:
            for key in [k for k, q in self._queues.items() if q.servable is servable]:
                if not self._queues[key].tasks:
                    del self._queues[key]

    def submit(
        self,
        model_name: str,
        servable: Servable,
        signature: str,
        inputs: Tensors,
        output_keys: list[str] | None,
    ) -> asyncio.Future[Tensors]:
        """Queue one request (from an event loop thread); the future resolves on that loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Tensors] = loop.create_future()
        arrays = list(inputs.values())
        rows = rows_of(inputs)
        task = _Task(
            inputs=inputs,
            rows=rows,
            loop=loop,
            future=future,
            enqueued=time.perf_counter(),
            trailing=tuple(a.shape[1:] for a in arrays),
        )
        key = (id(servable), signature, tuple(output_keys) if output_keys else None)
        with self._cv:
            if self._stopped:
                raise ServingError(Code.UNAVAILABLE, "server is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(
                    key, model_name, servable, signature, output_keys
                )
            if queue.rows and queue.rows + rows > self._max_queued_rows:
                raise ServingError(
                    Code.RESOURCE_EXHAUSTED,
                    f"batch queue of {model_name} is full ({queue.rows} rows waiting)",
                )
            queue.tasks.append(task)
            queue.rows += rows
            # Wake a batch thread only when there is something for it to do: each wake-up costs
            # a GIL hand-over that the event loop pays for in latency.
            if queue.busy:
                if queue.rows >= queue.target:
                    self._cv.notify_all()  # the thread filling this queue has its batch
            elif len(queue.tasks) == 1:
                self._ready.append(queue)
                self._cv.notify()
        return future

    def observe_unbatched(self, model_name: str, rows: int) -> None:
        """Count a lone request run without queueing as a batch of its own rows."""
        pool = (model_name,)
        self._metrics.queuing_latency.observe(pool, 0.0)
        self._metrics.input_batch_size.observe(pool, rows)
        self._metrics.processed_batch_size.observe(pool, rows)
        self._metrics.padding_size.observe(pool, 0)

    def _depths(self) -> dict[tuple[str, ...], float]:
        with self._cv:
            depths: dict[tuple[str, ...], float] = {}
            for queue in self._queues.values():
                depths[(queue.model_name,)] = depths.get((queue.model_name,), 0) + queue.rows
        return depths

    # -- batch threads ------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            with self._cv:
                while not self._ready and not self._stopped:
                    self._cv.wait()
                if not self._ready:
                    return
                queue = self._ready.popleft()
                queue.busy = True
                tasks = self._take(queue)
                queue.busy = False
                if queue.tasks:
                    self._ready.append(queue)
                    self._cv.notify()
            started = time.perf_counter()
            # Outside the lock: the event loop's submit waits for it.
            pool = (queue.model_name,)
            for task in tasks:
                self._metrics.queuing_latency.observe(pool, (started - task.enqueued) * 1e6)
            try:
                self._run(queue, tasks)
            except Exception:  # never lose a batch thread; the tasks still get an answer
                log.exception("batch failed")
                _send(tasks, [ServingError(Code.INTERNAL, "batch failed")] * len(tasks))
            queue.last_done = time.perf_counter()
            queue.last_run = queue.last_done - started

    def _take(self, queue: _Queue) -> list[_Task]:
        """Pop a batch off the queue (lock held), waiting for more only while load lasts.

        The target is the size of this queue's previous batch: in steady load the same number
        of requests comes back round, so waiting (at most `batch_timeout_micros`) for them to
        arrive makes batches that large instead of taking whoever came first. A request arriving
        at a queue idle for longer than the timeout targets a batch of one: it never waits.
        """
        limit = self.config.max_batch_size
        timeout = self.config.batch_timeout_micros / 1e6
        first = queue.tasks.popleft()
        queue.rows -= first.rows
        tasks, rows = [first], first.rows
        if timeout > 0:
            idle = first.enqueued - queue.last_done > timeout
            deadline = first.enqueued + timeout
        else:
            # No timeout set: wait only under load (the previous batch served more than one
            # request, and this one came before that batch's run time had passed again), for
            # three times as long as that batch ran (ADAPTIVE_WAIT_MIN to ADAPTIVE_WAIT_MAX).
            idle = queue.last_requests <= 1 or first.enqueued - queue.last_done > queue.last_run
            wait = min(max(3 * queue.last_run, ADAPTIVE_WAIT_MIN), ADAPTIVE_WAIT_MAX)
            deadline = time.perf_counter() + wait
        target = 1 if idle else min(limit, max(queue.last_rows, 1))
        while True:
            while queue.tasks and rows < limit:
                nxt = queue.tasks[0]
                if nxt.trailing != first.trailing or rows + nxt.rows > limit or first.rows == 0:
                    break
                queue.tasks.popleft()
                queue.rows -= nxt.rows
                tasks.append(nxt)
                rows += nxt.rows
            if rows >= target or self._stopped or queue.tasks:
                break
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            queue.target = target - rows
            self._cv.wait(remaining)
        queue.last_rows = rows
        queue.last_requests = len(tasks)
        return tasks

    def _run(self, queue: _Queue, tasks: list[_Task]) -> None:
        pool = (queue.model_name,)
        rows = sum(t.rows for t in tasks)
        padded = self.config.padded_size(rows) if rows <= self.config.max_batch_size else rows
        self._metrics.input_batch_size.observe(pool, rows)
        self._metrics.processed_batch_size.observe(pool, padded)
        self._metrics.padding_size.observe(pool, padded - rows)
        if len(tasks) == 1 and padded == rows:
            _send(tasks, [self._call(queue, tasks[0].inputs)])
            return
        merged = {
            key: _pad(np.concatenate([t.inputs[key] for t in tasks]), padded)
            for key in tasks[0].inputs
        }
        result = self._call(queue, merged, len(tasks))
        if isinstance(result, ServingError) or any(
            v.ndim == 0 or v.shape[0] != padded for v in result.values()
        ):
            # One bad request, or outputs without a batch dimension: run each task on its own so
            # only the culprit fails and no answer is split wrongly.
            _send(tasks, [self._call(queue, t.inputs) for t in tasks])
            return
        outcomes: list[_Outcome] = []
        start = 0
        for task in tasks:
            end = start + task.rows
            outcomes.append({key: value[start:end] for key, value in result.items()})
            start = end
        _send(tasks, outcomes)

    def _call(self, queue: _Queue, inputs: Tensors, requests: int = 1) -> _Outcome:
        try:
            return self._runner.timed_run(
                queue.servable, queue.signature, inputs, queue.output_keys, requests
            )
        except ServingError as exc:
            return exc
        except Exception as exc:
            log.exception("model run failed")
            return ServingError(Code.INTERNAL, f"model run failed: {type(exc).__name__}")


def _pad(array: np.ndarray, rows: int) -> np.ndarray:
    """Pad to an allowed batch size by repeating the first row (results for it are dropped)."""
    missing = rows - array.shape[0]
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[:1], missing, axis=0)])
