"""Sidecar evaluation: an evaluator task (TF_CONFIG task type "evaluator", outside the cluster)
scores each new checkpoint of the exporting task on the plan's `validation` data.

The exporting task's side (`EvalCheckpoints`, a Keras callback): at the end of every epoch it
writes `tf.train.Checkpoint(model=model)` to `<checkpoint dir>/eval/epoch-<n>` and then, with an
atomic rename, `<checkpoint dir>/eval/latest.json` (`{"epoch": n, "prefix": "epoch-<n>",
"written": <unix time>}`); it keeps the last two epochs' files. After a successful export it
writes `eval/DONE` (the same JSON as the last latest.json). BackupAndRestore's own files are no
use to a reader: they are overwritten in place while another process may read them and removed
after the export. Under MultiWorkerMirroredStrategy every worker writes its checkpoint (saving
may run collectives), the ones that do not export to a throwaway folder.

The evaluator's side (`evaluate`): builds the model with the user's function under the default
strategy, then polls `eval/`: each new latest.json is restored and evaluated with Keras'
evaluate(), the results become the gauges `modelship_training_eval_metric{name=...}` (the loss
and every compiled metric) and `modelship_training_eval_epoch` on its metrics endpoint, and one
log line. Like tf.keras' SidecarEvaluator it evaluates the newest checkpoint, so an evaluation
slower than an epoch skips epochs. It exits 0 once DONE is there and the checkpoint it names has
been evaluated. The checkpoint directory must be shared by the pods (a TrainingJob's
`spec.checkpoints.storageUri`); an emptyDir is not, and the evaluator then waits forever.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from .cluster import Cluster
from .plan import ModelFunction, TrainingContext, UserModelError, check_plan

FOLDER = "eval"
LATEST = "latest.json"
DONE = "DONE"
POLL_SECONDS = 0.5
KEEP = 2  # epochs whose checkpoint files stay: the newest and the one an evaluator may be reading


def eval_folder(root: Path) -> Path:
    return root / FOLDER


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    prefix: str
    written: float

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "prefix": self.prefix, "written": self.written}


def _read(path: Path) -> Checkpoint | None:
    try:
        data = json.loads(path.read_text())
        return Checkpoint(int(data["epoch"]), str(data["prefix"]), float(data["written"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: Path, checkpoint: Checkpoint) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(checkpoint.as_dict()))
    os.replace(tmp, path)


def latest(folder: Path) -> Checkpoint | None:
    return _read(folder / LATEST)


def done(folder: Path) -> Checkpoint | None:
    return _read(folder / DONE)


class EvalCheckpoints(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TF is untyped
    """The exporting task's per-epoch checkpoints for evaluators; `keep=False` (a worker that
    does not export) writes them to a throwaway folder."""

    def __init__(self, folder: Path, keep: bool, fresh: bool) -> None:
        super().__init__()
        self.keep = keep
        self.folder = folder
        self.fresh = fresh
        self.last: Checkpoint | None = None
        self._throwaway: Path | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.keep:
            self._throwaway = Path(tempfile.mkdtemp(prefix="modelship-eval-"))
            return
        if self.fresh:  # a new run (no BackupAndRestore state): an earlier run's files go
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / DONE).unlink(missing_ok=True)  # this run has not finished
        self.last = latest(self.folder)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        prefix = f"epoch-{epoch + 1}"
        target = self.folder if self.keep else self._throwaway
        assert target is not None
        tf.train.Checkpoint(model=self.model).write(str(target / prefix))
        if not self.keep:
            return
        self.last = Checkpoint(epoch + 1, prefix, time.time())
        _write(self.folder / LATEST, self.last)
        self._prune(epoch + 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._throwaway is not None:
            shutil.rmtree(self._throwaway, ignore_errors=True)
            self._throwaway = None

    def finish(self) -> None:
        """After a successful export: evaluators stop after this run's last checkpoint."""
        if self.keep and self.last is not None:
            _write(self.folder / DONE, self.last)

    def _prune(self, newest: int) -> None:
        for path in self.folder.glob("epoch-*"):
            number = path.name.removeprefix("epoch-").split(".", 1)[0]
            if number.isdigit() and int(number) <= newest - KEEP:
                path.unlink(missing_ok=True)


class EvalMetrics:
    """The evaluator's gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metric = Gauge(
            "modelship_training_eval_metric",
            "Loss and metrics of the latest evaluation on the validation data",
            ["name"],
            registry=self.registry,
        )
        self.epoch = Gauge(
            "modelship_training_eval_epoch",
            "Epoch of the checkpoint evaluated last",
            registry=self.registry,
        )

    def publish(self, epoch: int, results: dict[str, float]) -> None:
        for name, value in results.items():
            self.metric.labels(name=name).set(value)
        self.epoch.set(epoch)

    def serve(self, host: str, port: int) -> Any:
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server


def evaluate(
    args: argparse.Namespace,
    cluster: Cluster,
    function: ModelFunction,
    root: Path,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The evaluator task: returns 0 once the exporter has finished and its last checkpoint has
    been evaluated. Raises UserModelError when the plan has no validation data."""
    strategy = tf.distribute.get_strategy()
    context = TrainingContext(strategy, args.batch_size, args.epochs, cluster)
    with strategy.scope():
        plan = check_plan(function(context), args.model)
    if plan.validation is None:
        raise UserModelError(
            f"--model {args.model!r}: an evaluator task needs `validation` data in the "
            "TrainingPlan; the function returned none"
        )
    validation = plan.validation.batch(args.batch_size)
    if not getattr(plan.model, "built", True):  # a subclassed model: its variables, to restore
        features, _ = next(iter(validation))
        plan.model(features)
    folder = eval_folder(root)
    metrics = EvalMetrics() if args.metrics_port else None
    if metrics is not None:
        metrics.serve(args.metrics_host, args.metrics_port)
        print(f"evaluations on http://{args.metrics_host}:{args.metrics_port}/metrics", flush=True)
    print(f"evaluator: waiting for checkpoints in {folder}", flush=True)
    evaluated: Checkpoint | None = None
    while True:
        finished = done(folder)  # before latest.json: the exporter writes it last
        current = latest(folder)
        if current is not None and current != evaluated:
            results = run_evaluation(plan.model, validation, folder, current)
            if results is not None:
                evaluated = current
                if metrics is not None:
                    metrics.publish(current.epoch, results)
                shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(results.items()))
                print(f"evaluation epoch {current.epoch}/{args.epochs} {shown}", flush=True)
                continue
        elif finished is not None:
            print(f"evaluator: training finished at epoch {finished.epoch}", flush=True)
            return 0
        sleep(POLL_SECONDS)


def run_evaluation(
    model: Any, validation: Any, folder: Path, checkpoint: Checkpoint
) -> dict[str, float] | None:
    """The checkpoint's loss and metrics; None when it is gone (pruned while being read): the
    next poll finds a newer one."""
    try:
        status = tf.train.Checkpoint(model=model).read(str(folder / checkpoint.prefix))
        status.expect_partial()  # the optimizer's state is not needed
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        print(f"evaluator: cannot read {checkpoint.prefix}: {type(e).__name__}", flush=True)
        return None
    results = model.evaluate(validation, return_dict=True, verbose=0)
    numbers: dict[str, float] = {}
    for name, value in results.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            numbers[name] = number
    return numbers
