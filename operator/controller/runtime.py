"""The running controller: caches fed by kopf's watches, a work queue, worker tasks that run
reconciles in threads, and a slow periodic resync as a safety net."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ..kube import KubeApi, load_client_config
from ..resources.children import CHILD_KINDS
from .plan import Snapshot
from .queue import Key, WorkQueue
from .reconcile import reconcile
from .version import VersionProber

log = logging.getLogger(__name__)

# Names of the kopf indexes (handlers.py) holding each kind's objects by owner key.
MODEL_DEPLOYMENTS = "modeldeployments"
PODS = "pods"
CHILD_INDEXES = {
    "Deployment": "deployments",
    "Service": "services",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "ConfigMap": "configmaps",
}
assert set(CHILD_INDEXES) == set(CHILD_KINDS)


def _only(values: Iterable[Any] | None) -> Any:
    for value in values or ():
        return value
    return None


class Controller:
    def __init__(self) -> None:
        self.queue = WorkQueue(settle=0.5)
        self._indexes: Mapping[str, Any] = {}
        self._api: KubeApi | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._prober: VersionProber | None = None

    async def start(self, workers: int, resync_seconds: float, version_timeout: float) -> None:
        self._api = KubeApi(load_client_config())
        self._prober = VersionProber(timeout=version_timeout) if version_timeout > 0 else None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(workers)]
        self._tasks.append(asyncio.create_task(self._resync(resync_seconds)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def notify(self, key: Key, indexes: Mapping[str, Any]) -> None:
        """Called by every watch event: refresh the index view and queue the owner."""
        self._indexes = indexes
        self.queue.add(key)

    def snapshot(self, key: Key) -> Snapshot | None:
        """Copy what the caches hold for one key; runs on the event loop, where kopf writes."""
        body = _only(self._indexes.get(MODEL_DEPLOYMENTS, {}).get(key))
        if body is None:
            return None  # deleted: the garbage collector removes the children
        children = {}
        for kind, index in CHILD_INDEXES.items():
            live = _only(self._indexes.get(index, {}).get(key))
            if live is not None:
                children[kind] = live
        pods = list(self._indexes.get(PODS, {}).get(key) or ())
        return Snapshot(body=body, children=children, pods=pods)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            try:
                snapshot = self.snapshot(key)
                if snapshot is None and self._prober is not None:
                    self._prober.forget(key)  # deleted: nothing left to ask about
                elif snapshot is not None and self._api is not None:
                    await loop.run_in_executor(
                        self._executor,
                        functools.partial(reconcile, snapshot, self._api, prober=self._prober),
                    )
                self.queue.forget(key)
            except (ApiException, HTTPError, OSError) as err:
                delay = self.queue.retry_later(key)
                log.warning(
                    "reconcile of %s/%s failed (%s); retrying in %.1fs",
                    *key,
                    getattr(err, "reason", err),
                    delay,
                )
            except Exception:
                delay = self.queue.retry_later(key)
                log.exception("reconcile of %s/%s crashed; retrying in %.1fs", *key, delay)
            finally:
                self.queue.done(key)

    async def _resync(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for key in list(self._indexes.get(MODEL_DEPLOYMENTS, {})):
                self.queue.add(key)


CONTROLLER = Controller()
