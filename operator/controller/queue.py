"""A work queue of object keys (one queue per kind): a key is queued at most once, never
processed by two workers at once, and re-queued when it changed while being processed
(client-go's contract)."""

from __future__ import annotations

import asyncio

Key = tuple[str, str]  # (namespace, name)


class WorkQueue:
    """`settle` holds a new key back briefly, so a burst of watch events (a rollout touches the
    Deployment, ReplicaSet and pods many times) becomes one reconcile and one status write."""

    def __init__(self, settle: float = 0.0) -> None:
        self._settle = settle
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}

    def add(self, key: Key, *, urgent: bool = False) -> None:
        """`urgent` skips the settle delay (a scale decision should act at once)."""
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._pending:
            self._pending.add(key)
            if self._settle and not urgent:
                asyncio.get_running_loop().call_later(self._settle, self._queue.put_nowait, key)
            else:
                self._queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Look at the key again after `delay` seconds (a poll, or a timer such as a TTL)."""
        asyncio.get_running_loop().call_later(max(0.0, delay), self.add, key)

    async def get(self) -> Key:
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

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
