"""Training progress: the gauges the operator scrapes from the exporting task, and the Keras
callback that sets them and prints one line per epoch."""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf
from prometheus_client import CollectorRegistry, Gauge, start_http_server


@dataclass
class Progress:
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "totalSteps": self.total_steps,
            "epoch": self.epoch,
            "loss": self.loss,
            "metrics": dict(self.metrics),
        }


class ProgressMetrics:
    """The gauges, in a registry of their own (no process or Python collectors: the operator
    reads only these)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.step = Gauge("modelship_training_step", "Training steps done", registry=self.registry)
        self.total_steps = Gauge(
            "modelship_training_total_steps", "Training steps planned", registry=self.registry
        )
        self.epoch = Gauge("modelship_training_epoch", "Epochs done", registry=self.registry)
        self.loss = Gauge(
            "modelship_training_loss", "Loss of the latest step", registry=self.registry
        )
        self.metric = Gauge(
            "modelship_training_metric",
            "Keras metrics of the latest step or epoch",
            ["name"],
            registry=self.registry,
        )

    def publish(self, progress: Progress) -> None:
        self.step.set(progress.step)
        self.total_steps.set(progress.total_steps)
        self.epoch.set(progress.epoch)
        if progress.loss is not None:
            self.loss.set(progress.loss)
        for name, value in progress.metrics.items():
            self.metric.labels(name=name).set(value)

    def serve(self, host: str, port: int) -> Any:
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server


class ProgressCallback(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF is untyped
    """Steps count across epochs: step = epoch * steps_per_epoch + batch + 1, so a resumed run
    continues from the restored epoch's first step."""

    def __init__(
        self, progress: Progress, steps_per_epoch: int, epochs: int, metrics: ProgressMetrics | None
    ) -> None:
        super().__init__()
        self.progress = progress
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.metrics = metrics
        self._epoch = 0
        self._started = False
        self._lock = threading.Lock()
        progress.total_steps = steps_per_epoch * epochs
        self._publish()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        if epoch and not self._started:  # the first epoch of a resumed run
            self.progress.step = epoch * self.steps_per_epoch
            self.progress.epoch = epoch
            print(f"resuming at epoch {epoch}, step {self.progress.step}", flush=True)
            self._publish()
        self._started = True

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.step = self._epoch * self.steps_per_epoch + batch + 1
        self._record(logs)
        self._publish()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.epoch = epoch + 1
        self._record(logs)
        self._publish()
        p = self.progress
        shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(p.metrics.items()))
        loss = f"{p.loss:.4f}" if p.loss is not None else "-"
        print(
            f"epoch {p.epoch}/{self.epochs} step {p.step}/{p.total_steps} loss={loss} {shown}",
            file=sys.stdout,
            flush=True,
        )

    def _record(self, logs: dict[str, Any] | None) -> None:
        for key, value in (logs or {}).items():
            number = _number(value)
            if number is None:
                continue
            if key == "loss":
                self.progress.loss = number
            else:
                self.progress.metrics[key] = number

    def _publish(self) -> None:
        if self.metrics is not None:
            with self._lock:
                self.metrics.publish(self.progress)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
