"""Per-object gauges the chart's alerts read: whether each ModelDeployment is Ready and which
state each TrainingJob is in. Set from the status the caches hold, so only the replica that
reconciles (the leader) publishes them; an object's series go when it is deleted."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Gauge

from .queue import Key

MODEL_DEPLOYMENT_READY = Gauge(
    "modelship_modeldeployment_ready",
    "1 while the ModelDeployment's Ready condition is True, else 0.",
    ["namespace", "modeldeployment"],
)
TRAINING_JOB_STATE = Gauge(
    "modelship_trainingjob_state",
    "1 for the TrainingJob's current status.state, 0 for the others.",
    ["namespace", "trainingjob", "state"],
)
TRAINING_JOB_STATES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")


def _ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def record_model_deployment(key: Key, body: dict[str, Any]) -> None:
    MODEL_DEPLOYMENT_READY.labels(*key).set(1 if _ready(body.get("status") or {}) else 0)


def forget_model_deployment(key: Key) -> None:
    with contextlib.suppress(KeyError):
        MODEL_DEPLOYMENT_READY.remove(*key)


def record_training_job(key: Key, body: dict[str, Any]) -> None:
    current = (body.get("status") or {}).get("state") or "Pending"
    for state in TRAINING_JOB_STATES:
        TRAINING_JOB_STATE.labels(*key, state).set(1 if state == current else 0)


def forget_training_job(key: Key) -> None:
    for state in TRAINING_JOB_STATES:
        with contextlib.suppress(KeyError):
            TRAINING_JOB_STATE.remove(*key, state)
