"""A work queue of object keys (one queue per kind): a key is queued at most once, never
processed by two workers at once, and re-queued when it changed while being processed
(client-go's contract).

Two lanes share those guarantees. `NEW` holds keys whose spec the operator has not acted on yet:
their reconcile creates children, and creating a ClusterIP Service can take a second under load.
`ROUTINE` holds everything else (a child or pod changed, a timer, a resync): mostly a status
write. Each lane has its own workers, so a burst of new objects never holds back the status of
objects whose pods are already ready."""

from __future__ import annotations

import asyncio

Key = tuple[str, str]  # (namespace, name)

NEW = "new"
ROUTINE = "routine"
LANES = (NEW, ROUTINE)


class WorkQueue:
    """`settle` holds a routine key back briefly, so a burst of watch events (a rollout touches
    the Deployment, ReplicaSet and pods many times) becomes one reconcile and one status
    write."""

    def __init__(self, settle: float = 0.0) -> None:
        self._settle = settle
        self._queues: dict[str, asyncio.Queue[Key]] = {lane: asyncio.Queue() for lane in LANES}
        self._pending: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: dict[Key, bool] = {}  # key → whether a new spec was among the changes
        self._failures: dict[Key, int] = {}

    def add(self, key: Key, *, urgent: bool = False, new: bool = False) -> None:
        """`urgent` skips the settle delay (a scale decision should act at once); `new` (a spec
        not acted on yet, which implies urgent) queues it in the NEW lane."""
        if key in self._active:
            self._dirty[key] = self._dirty.get(key, False) or new
        elif key not in self._pending:
            self._pending.add(key)
            queue = self._queues[NEW if new else ROUTINE]
            if self._settle and not (urgent or new):
                asyncio.get_running_loop().call_later(self._settle, queue.put_nowait, key)
            else:
                queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Look at the key again after `delay` seconds (a poll, or a timer such as a TTL)."""
        asyncio.get_running_loop().call_later(max(0.0, delay), self.add, key)

    async def get(self, lane: str = ROUTINE) -> Key:
        key = await self._queues[lane].get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._dirty:
            new = self._dirty.pop(key)
            self.add(key, new=new)

    def retry_later(self, key: Key, base: float = 0.5, ceiling: float = 60.0) -> float:
        """Back off exponentially per key after a transient failure; returns the delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay: float = min(ceiling, base * 2 ** (failures - 1))
        asyncio.get_running_loop().call_later(delay, self.add, key)
        return delay

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending) + len(self._active)
