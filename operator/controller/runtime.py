"""ModelDeployment's controller: snapshots from the caches, the autoscaler's tick, and the
version prober, on the shared runtime of controller/base.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from ..api.modeldeployment import ModelDeploymentSpec
from ..kube import KubeApi
from ..resources.kinds import BY_KIND
from ..resources.scaledobject import MetricsSource
from ..resources.scheduling import cpu_request_cores
from ..settings import PrometheusSettings
from .autoscaler import Autoscaler, Target, client_for
from .base import CHILD_INDEXES, KindController, only
from .object_metrics import forget_model_deployment, record_model_deployment
from .plan import Snapshot
from .queue import Key
from .reconcile import CreateLimits, FirstStatus, reconcile
from .scaling import ScaleState, effective_replicas
from .status import pod_ready
from .version import VersionProber

log = logging.getLogger(__name__)

# Name of the kopf index (handlers.py) holding ModelDeployments by (namespace, name).
MODEL_DEPLOYMENTS = "modeldeployments"
TRAINING_JOBS = "trainingjobs"
__all__ = ["CHILD_INDEXES", "CONTROLLER", "Controller"]


class Controller(KindController):
    kind = "ModelDeployment"
    plural = MODEL_DEPLOYMENTS

    def __init__(self) -> None:
        super().__init__()
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
        # New objects whose first status waits for a quick rollout (reconcile.py).
        self._first_status = FirstStatus()
        self._limits = CreateLimits()

    async def start(  # type: ignore[override]
        self,
        api: KubeApi,
        workers: int,
        resync_seconds: float,
        version_timeout: float,
        prometheus: PrometheusSettings | None = None,
        autoscale_tick: float = 1.0,
        create_limits: Mapping[str, int] | None = None,
    ) -> None:
        """`create_limits`: child kind → creates in flight at once (reconcile.CreateLimits)."""
        self._limits = CreateLimits(create_limits)
        await super().start(api, workers, resync_seconds)
        self._prober = VersionProber(timeout=version_timeout) if version_timeout > 0 else None
        prometheus = prometheus or PrometheusSettings()
        self._metrics = MetricsSource(
            prometheus.url, prometheus.rate_window, prometheus.insecure_skip_verify
        )
        self._autoscaler = Autoscaler(client_for(prometheus), window=prometheus.rate_window)
        self.add_task(asyncio.create_task(self._autoscale(autoscale_tick)))

    def training_job_changed(self, key: Key) -> None:
        """Queue every ModelDeployment that serves what this TrainingJob exports."""
        namespace, name = key
        for md_key in self.keys():
            body = self.body(md_key)
            spec = (body or {}).get("spec") or {}
            if md_key[0] == namespace and spec.get("trainingJobName") == name:
                self.queue.add(md_key)

    def snapshot(self, key: Key) -> Snapshot | None:
        """Copy what the caches hold for one key; on the event loop, where the caches change."""
        body = self.body(key)
        if body is None:
            return None  # deleted: the garbage collector removes the children
        record_model_deployment(key, body)
        # One object of each kind (named after the ModelDeployment).
        children = {kind: live[0] for kind, live in self.children(key).items()}
        job_name = (body.get("spec") or {}).get("trainingJobName")
        training_job = (
            only(self._indexes.get(TRAINING_JOBS, {}).get((key[0], job_name)))
            if isinstance(job_name, str)
            else None
        )
        return Snapshot(
            body=body,
            children=children,
            pods=self.pods(key),
            scale=self.scale.get(key),
            scale_ignored=self._scale_ignored(key, body),
            training_job=training_job,
        )

    def reconcile(self, snapshot: Any, api: KubeApi) -> float | None:
        first = self._first_status
        reconcile(
            snapshot,
            api,
            prober=self._prober,
            metrics=self._metrics,
            first_status=first,
            limits=self._limits,
        )
        # A first status held back: look again when its grace ends, events or not.
        return first.due_in(snapshot.ref)

    def forget(self, key: Key) -> None:
        forget_model_deployment(key)
        self._first_status.forget(*key)
        if self._prober is not None:
            self._prober.forget(key)  # deleted: nothing left to ask about

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
        keys = self.keys()
        for gone in set(self._specs) - set(keys):
            self._specs.pop(gone, None)
        for key in keys:
            body = self.body(key)
            if body is None:
                continue
            spec = self._spec(key, body)
            if spec is None or spec.autoscaling is None or spec.autoscaling.mode == "keda":
                continue
            owner = self.owner_key(key)
            deployment = only(self._indexes.get(BY_KIND["Deployment"].index, {}).get(owner))
            current = effective_replicas(
                spec, body.get("status") or {}, deployment, self.scale.get(key)
            )
            pods = self.pods(key)
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


CONTROLLER = Controller()
