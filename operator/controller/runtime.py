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
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from ..api.modeldeployment import ModelDeploymentSpec
from ..kube import KubeApi, load_client_config
from ..resources.kinds import BY_KIND, CHILDREN
from ..resources.scaledobject import MetricsSource
from ..resources.scheduling import cpu_request_cores
from ..settings import PrometheusSettings
from .autoscaler import Autoscaler, Target, client_for
from .plan import Snapshot
from .queue import Key, WorkQueue
from .reconcile import reconcile
from .scaling import ScaleState, effective_replicas
from .status import pod_ready
from .version import VersionProber

log = logging.getLogger(__name__)

# Names of the kopf indexes (handlers.py) holding each kind's objects by owner key.
MODEL_DEPLOYMENTS = "modeldeployments"
PODS = "pods"
CHILD_INDEXES = {child.kind: child.index for child in CHILDREN}


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
        self._autoscaler: Autoscaler | None = None
        # Where keda-mode ScaledObjects read metrics: the operator's own Prometheus.
        self._metrics: MetricsSource | None = None
        # The autoscaler's latest state per key, read by snapshots (both on the event loop).
        self.scale: dict[Key, ScaleState] = {}
        # spec.replicas last seen per autoscaled key, to tell a `kubectl scale` it is ignored.
        self._spec_replicas: dict[Key, int] = {}
        # Parsed specs by (key, resourceVersion): a tick must not re-validate 500 specs.
        self._specs: dict[Key, tuple[str, ModelDeploymentSpec | None]] = {}

    async def start(
        self,
        workers: int,
        resync_seconds: float,
        version_timeout: float,
        prometheus: PrometheusSettings | None = None,
        autoscale_tick: float = 1.0,
    ) -> None:
        self._api = KubeApi(load_client_config())
        self._prober = VersionProber(timeout=version_timeout) if version_timeout > 0 else None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(workers)]
        self._tasks.append(asyncio.create_task(self._resync(resync_seconds)))
        prometheus = prometheus or PrometheusSettings()
        self._metrics = MetricsSource(
            prometheus.url, prometheus.rate_window, prometheus.insecure_skip_verify
        )
        self._autoscaler = Autoscaler(client_for(prometheus), window=prometheus.rate_window)
        self._tasks.append(asyncio.create_task(self._autoscale(autoscale_tick)))

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
        return Snapshot(
            body=body,
            children=children,
            pods=pods,
            scale=self.scale.get(key),
            scale_ignored=self._scale_ignored(key, body),
        )

    def _scale_ignored(self, key: Key, body: dict[str, Any]) -> bool:
        """spec.replicas changed since last seen while the operator autoscales (kubectl scale);
        in mode keda spec.replicas is KEDA's to write."""
        spec = body.get("spec") or {}
        replicas = spec.get("replicas")
        autoscaling = spec.get("autoscaling")
        keda = isinstance(autoscaling, dict) and autoscaling.get("mode") == "keda"
        if not autoscaling or keda or not isinstance(replicas, int):
            self._spec_replicas.pop(key, None)
            return False
        before = self._spec_replicas.get(key)
        self._spec_replicas[key] = replicas
        return before is not None and before != replicas

    # ---- autoscaler ---------------------------------------------------------------------------

    def _spec(self, key: Key, body: dict[str, Any]) -> ModelDeploymentSpec | None:
        version = str(body.get("metadata", {}).get("resourceVersion", ""))
        cached = self._specs.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            spec: ModelDeploymentSpec | None = ModelDeploymentSpec.model_validate(
                body.get("spec") or {}
            )
        except ValidationError:
            spec = None  # the reconcile reports it
        self._specs[key] = (version, spec)
        return spec

    def scale_targets(self) -> list[Target]:
        """Every autoscaled ModelDeployment in the caches, as the tick needs it."""
        targets = []
        bodies = self._indexes.get(MODEL_DEPLOYMENTS, {})
        for gone in set(self._specs) - set(bodies):
            self._specs.pop(gone, None)
        for key in list(bodies):
            body = _only(bodies.get(key))
            if body is None:
                continue
            spec = self._spec(key, body)
            if spec is None or spec.autoscaling is None or spec.autoscaling.mode == "keda":
                continue
            deployment = _only(self._indexes.get(BY_KIND["Deployment"].index, {}).get(key))
            current = effective_replicas(
                spec, body.get("status") or {}, deployment, self.scale.get(key)
            )
            pods = self._indexes.get(PODS, {}).get(key) or ()
            targets.append(
                Target(
                    key=key,
                    autoscaling=spec.autoscaling,
                    current=current,
                    ready_pods=sum(1 for pod in pods if pod_ready(pod)),
                    cpu_request=cpu_request_cores(spec.server.resources),
                )
            )
        return targets

    async def _autoscale(self, tick: float) -> None:
        loop = asyncio.get_running_loop()
        # Its own thread: a slow Prometheus never delays reconciles, and ticks never overlap.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoscaler")
        try:
            while True:
                began = loop.time()
                try:
                    await self._autoscale_once(loop, executor)
                except Exception:
                    log.exception("autoscaler tick failed")
                await asyncio.sleep(max(0.0, tick - (loop.time() - began)))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _autoscale_once(
        self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor
    ) -> None:
        assert self._autoscaler is not None
        targets = self.scale_targets()
        states = await loop.run_in_executor(
            executor, self._autoscaler.tick, targets, dict(self.scale)
        )
        for key in set(self.scale) - set(states):
            del self.scale[key]
        for key, state in states.items():
            before = self.scale.get(key)
            if before is not state:
                self.scale[key] = state
                self.queue.add(key, urgent=state.desired != (before.desired if before else None))

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
                        functools.partial(
                            reconcile,
                            snapshot,
                            self._api,
                            prober=self._prober,
                            metrics=self._metrics,
                        ),
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
