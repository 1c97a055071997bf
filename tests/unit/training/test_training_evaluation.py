"""Sidecar evaluation: the exporter's per-epoch checkpoints for evaluators (written, pruned,
finished with DONE) and the evaluator's loop (restores each new checkpoint, evaluates it,
publishes the gauges, stops after the last one); an evaluator without validation data exits 2."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from modelship_server.commands import main
from modelship_server.training import evaluation
from modelship_server.training.cluster import Cluster, Mode
from modelship_server.training.evaluation import EvalCheckpoints, EvalMetrics
from modelship_server.training.plan import TrainingContext, TrainingPlan, UserModelError
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

EVALUATOR = Cluster(Mode.MULTI_WORKER, "evaluator", 0, {"chief": ["chief:2222"]})
X = np.linspace(-1, 1, 40, dtype=np.float32).reshape(-1, 1)
Y = (X[:, 0] > 0).astype(np.float32)


def small_model() -> Any:
    inputs = tf.keras.Input(shape=(1,), name="x")
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(inputs)
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def plan_function(validation: bool = True) -> Any:
    def function(context: TrainingContext) -> TrainingPlan:
        data = tf.data.Dataset.from_tensor_slices((X, Y))
        return TrainingPlan(small_model(), data, data if validation else None)

    return function


def set_weights(model: Any, w: float, b: float) -> None:
    model.set_weights([np.array([[w]], np.float32), np.array([b], np.float32)])


def arguments(**overrides: Any) -> argparse.Namespace:
    values = {"model": "m:f", "batch_size": 8, "epochs": 3, "metrics_port": 0}
    values["metrics_host"] = "127.0.0.1"
    return argparse.Namespace(**{**values, **overrides})


def samples(metrics: EvalMetrics) -> dict[tuple[str, str], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, s.labels.get("name", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_exporter_writes_a_checkpoint_per_epoch_keeps_two_and_marks_the_end(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "DONE").write_text("{}")  # an earlier, finished run's marker
    model = small_model()
    callback = EvalCheckpoints(folder, keep=True, fresh=False)
    callback.set_model(model)
    callback.on_train_begin()
    assert not (folder / "DONE").exists()
    for epoch in range(3):
        callback.on_epoch_end(epoch)
        latest = evaluation.latest(folder)
        assert latest is not None
        assert (latest.epoch, latest.prefix) == (epoch + 1, f"epoch-{epoch + 1}")
    assert sorted({p.name.split(".")[0] for p in folder.glob("epoch-*")}) == ["epoch-2", "epoch-3"]
    assert evaluation.done(folder) is None
    callback.on_train_end()
    callback.finish()
    assert evaluation.done(folder) == evaluation.latest(folder)
    assert json.loads((folder / "DONE").read_text())["epoch"] == 3


def test_a_fresh_run_clears_an_earlier_runs_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "epoch-9.index").write_text("old")
    (folder / "latest.json").write_text('{"epoch": 9, "prefix": "epoch-9", "written": 1}')
    callback = EvalCheckpoints(folder, keep=True, fresh=True)
    callback.set_model(small_model())
    callback.on_train_begin()
    assert list(folder.iterdir()) == []
    assert evaluation.latest(folder) is None


def test_a_worker_that_does_not_export_writes_nothing_shared(tmp_path: Path) -> None:
    folder = tmp_path / "eval"
    callback = EvalCheckpoints(folder, keep=False, fresh=True)
    callback.set_model(small_model())
    callback.on_train_begin()
    throwaway = callback._throwaway
    assert throwaway is not None
    callback.on_epoch_end(0)
    assert list(throwaway.glob("epoch-1.*"))  # it took part in the save
    callback.on_train_end()
    callback.finish()
    assert not folder.exists()
    assert not throwaway.exists()


def test_the_evaluator_scores_every_new_checkpoint_and_stops_after_the_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in exporter (driven by the evaluator's sleep) saves epochs 1..3 with weights
    whose accuracy is known, then DONE. Epoch 2's checkpoint is announced before its files
    exist once: the evaluator retries it."""
    folder = tmp_path / "eval"
    exporter_model = small_model()
    exporter = EvalCheckpoints(folder, keep=True, fresh=True)
    exporter.set_model(exporter_model)
    exporter.on_train_begin()
    # epoch 1: everything predicted positive (accuracy 0.5); 2: a perfect split; 3: inverted.
    weights = {1: (0.0, 5.0), 2: (20.0, 0.0), 3: (-20.0, 0.0)}
    set_weights(exporter_model, *weights[1])
    exporter.on_epoch_end(0)
    steps = iter(["announce-2", "write-2", "idle", "write-3", "done", "idle"])

    def sleep(_: float) -> None:
        step = next(steps)
        if step == "announce-2":
            evaluation._write(folder / "latest.json", evaluation.Checkpoint(2, "epoch-2", 1.0))
        elif step.startswith("write-"):
            epoch = int(step[-1])
            set_weights(exporter_model, *weights[epoch])
            exporter.on_epoch_end(epoch - 1)
        elif step == "done":
            exporter.finish()

    made: list[EvalMetrics] = []

    class Recorded(EvalMetrics):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        def serve(self, host: str, port: int) -> None:
            pass

    monkeypatch.setattr(evaluation, "EvalMetrics", Recorded)
    args = arguments(metrics_port=9400)
    code = evaluation.evaluate(args, EVALUATOR, plan_function(), tmp_path, sleep=sleep)
    assert code == 0
    assert next(steps) == "idle"  # it stopped right after DONE, no more polling
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("evaluation epoch")]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "accuracy=0.5000" in lines[0]
    assert "accuracy=1.0000" in lines[1]
    assert "accuracy=0.0000" in lines[2]
    assert "cannot read epoch-2" in out
    assert "training finished at epoch 3" in out
    (metrics,) = made
    seen = samples(metrics)
    assert seen[("modelship_training_eval_epoch", "")] == 3
    assert seen[("modelship_training_eval_metric", "accuracy")] == 0.0
    assert seen[("modelship_training_eval_metric", "loss")] > 1


def test_the_gauges_name_each_result() -> None:
    metrics = EvalMetrics()
    metrics.publish(4, {"loss": 0.25, "accuracy": 0.9})
    seen = samples(metrics)
    assert seen[("modelship_training_eval_epoch", "")] == 4
    assert seen[("modelship_training_eval_metric", "loss")] == 0.25
    assert seen[("modelship_training_eval_metric", "accuracy")] == 0.9


def test_an_evaluator_stops_when_the_exporter_finished_before_it_started(tmp_path: Path) -> None:
    folder = tmp_path / "eval"
    exporter = EvalCheckpoints(folder, keep=True, fresh=True)
    exporter.set_model(small_model())
    exporter.on_train_begin()
    exporter.on_epoch_end(0)
    exporter.finish()

    def sleep(_: float) -> None:
        raise AssertionError("it polled after the last checkpoint")

    assert evaluation.evaluate(arguments(), EVALUATOR, plan_function(), tmp_path, sleep) == 0


def test_an_evaluator_needs_validation_data(tmp_path: Path) -> None:
    with pytest.raises(UserModelError, match="`validation`"):
        evaluation.evaluate(arguments(), EVALUATOR, plan_function(validation=False), tmp_path)


def test_an_evaluator_task_without_validation_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("evaluator_plans")
    module.no_validation = plan_function(validation=False)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "evaluator_plans", module)
    config = {"cluster": {"chief": ["127.0.0.1:1"]}, "task": {"type": "evaluator", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    log = tmp_path / "termination-log"
    code = main(
        [
            "train",
            "--model=evaluator_plans:no_validation",
            f"--checkpoint-dir={tmp_path}",
            "--metrics-port=0",
            f"--termination-log={log}",
        ]
    )
    assert code == 2
    assert "validation" in log.read_text()
