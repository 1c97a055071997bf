"""TrainingJob's controller on the shared runtime: a snapshot of its Service, role Jobs and
pods from the caches, and the reconcile of reconcile.py."""

from __future__ import annotations

from typing import Any

from ...kube import KubeApi
from ..base import KindController
from ..object_metrics import forget_training_job, record_training_job
from ..queue import Key
from .progress import ProgressProber
from .reconcile import TrainingSnapshot, reconcile_training, role_of


class TrainingJobController(KindController):
    kind = "TrainingJob"
    plural = "trainingjobs"

    def __init__(self) -> None:
        super().__init__()
        self._prober = ProgressProber()

    def snapshot(self, key: Key) -> TrainingSnapshot | None:
        body = self.body(key)
        if body is None:
            return None
        record_training_job(key, body)
        children = self.children(key)
        jobs = {}
        for job in children.get("Job", ()):
            role = role_of(job, key[1])
            if role:
                jobs[role] = job
        services = children.get("Service")
        service = services[0] if services else None
        return TrainingSnapshot(body=body, jobs=jobs, service=service, pods=self.pods(key))

    def reconcile(self, snapshot: Any, api: KubeApi) -> float | None:
        return reconcile_training(snapshot, api, self._prober)

    def forget(self, key: Key) -> None:
        forget_training_job(key)


TRAINING_JOB_CONTROLLER = TrainingJobController()
