"""What every kind's controller shares: a view of the caches the watches fill (kopf's
for our kinds, informer.py's for children and pods), a work queue,
worker tasks that run reconciles in threads, and a slow periodic resync as a safety net. A kind's
controller (ModelDeployment's in runtime.py, TrainingJob's in trainingjob/) adds how to snapshot
one object and how to reconcile it."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ..kube import KubeApi
from ..resources.kinds import CHILDREN
from .queue import LANES, Key, WorkQueue

log = logging.getLogger(__name__)

# Name of the cache (handlers.py, informer.py) holding our pods by owner.
PODS = "pods"
# kind → name of the cache holding that child kind by owner.
CHILD_INDEXES = {child.kind: child.index for child in CHILDREN}

OwnerKey = tuple[str, str, str]  # (owner kind, namespace, owner name): how children are indexed


def only(values: Iterable[Any] | None) -> Any:
    for value in values or ():
        return value
    return None


class KindController:
    """The controller of one kind of ours. Subclasses set `kind` and `plural` and implement
    `snapshot` (on the event loop, where the caches are written) and `reconcile` (in a thread)."""

    kind = ""
    plural = ""  # also the name of the kopf index holding these objects by (namespace, name)

    def __init__(self) -> None:
        self.queue = WorkQueue(settle=0.5)
        self._indexes: Mapping[str, Any] = {}
        self._api: KubeApi | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    # ---- the caches ---------------------------------------------------------------------------

    def notify(self, key: Key, indexes: Mapping[str, Any], *, new: bool = False) -> None:
        """Called by every watch event: refresh the index view and queue the object. `new` (a
        spec not yet acted on: nothing to coalesce with) skips the settle delay and takes the
        queue's NEW lane."""
        self._indexes = indexes
        self.queue.add(key, new=new)

    def refresh(self, indexes: Mapping[str, Any]) -> None:
        self._indexes = indexes

    def body(self, key: Key) -> dict[str, Any] | None:
        found: dict[str, Any] | None = only(self._indexes.get(self.plural, {}).get(key))
        return found

    def keys(self) -> list[Key]:
        return list(self._indexes.get(self.plural, {}))

    def owner_key(self, key: Key) -> OwnerKey:
        return (self.kind, *key)

    def children(self, key: Key) -> dict[str, list[dict[str, Any]]]:
        """Child kind → the live children whose controller owner is this object."""
        owner = self.owner_key(key)
        found = {}
        for kind, index in CHILD_INDEXES.items():
            live = list(self._indexes.get(index, {}).get(owner) or ())
            if live:
                found[kind] = live
        return found

    def pods(self, key: Key) -> list[dict[str, Any]]:
        return list(self._indexes.get(PODS, {}).get(self.owner_key(key)) or ())

    # ---- what a kind adds ---------------------------------------------------------------------

    def snapshot(self, key: Key) -> Any:
        """A copy of what the caches hold for one object; None when it is gone."""
        raise NotImplementedError

    def reconcile(self, snapshot: Any, api: KubeApi) -> float | None:
        """One reconcile, in a worker thread. Returns seconds after which to look again even
        without an event (a poll or a timer), or None."""
        raise NotImplementedError

    def forget(self, key: Key) -> None:
        """The object is gone: drop what is kept about it."""

    # ---- running ------------------------------------------------------------------------------

    async def start(self, api: KubeApi, workers: int, resync_seconds: float) -> None:
        """`workers` reconciles at once per lane of the queue (queue.py)."""
        self._api = api
        self._executor = ThreadPoolExecutor(
            max_workers=workers * len(LANES), thread_name_prefix=f"reconcile-{self.plural}"
        )
        self._tasks = [
            asyncio.create_task(self._work(lane)) for lane in LANES for _ in range(workers)
        ]
        self._tasks.append(asyncio.create_task(self._resync(resync_seconds)))

    def add_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _work(self, lane: str) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get(lane)
            try:
                snapshot = self.snapshot(key)
                if snapshot is None:
                    self.forget(key)  # deleted: the garbage collector removes the children
                elif self._api is not None:
                    again = await loop.run_in_executor(
                        self._executor, functools.partial(self.reconcile, snapshot, self._api)
                    )
                    if again is not None:
                        self.queue.add_after(key, again)
                self.queue.forget(key)
            except (ApiException, HTTPError, OSError) as err:
                delay = self.queue.retry_later(key)
                log.warning(
                    "reconcile of %s %s/%s failed (%s); retrying in %.1fs",
                    self.kind,
                    *key,
                    getattr(err, "reason", err),
                    delay,
                )
            except Exception:
                delay = self.queue.retry_later(key)
                log.exception(
                    "reconcile of %s %s/%s crashed; retrying in %.1fs", self.kind, *key, delay
                )
            finally:
                self.queue.done(key)

    async def _resync(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for key in self.keys():
                self.queue.add(key)
