"""Sidecar evaluation with real TensorFlow processes: a chief that trains alone (TF_CONFIG with one
chief, so the default strategy and Keras fit()) and an evaluator process beside it (TF_CONFIG task
type "evaluator") sharing one checkpoint directory. The evaluator scores each epoch's checkpoint
on the validation data, serves the results as gauges while it runs, and exits 0 after the chief's
success."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from storage_servers import free_port

MODELSHIP = Path(sys.executable).parent / "modelship"
EXAMPLE = "modelship_server.training.examples.digits:model"
EPOCHS = 3


def launch(
    folder: Path, name: str, tf_config: dict[str, object], *args: str
) -> subprocess.Popen[bytes]:
    home = folder / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_CONFIG": json.dumps(tf_config),
    }
    command = [
        str(MODELSHIP), "train", f"--model={EXAMPLE}", "--batch-size=64", f"--epochs={EPOCHS}",
        f"--checkpoint-dir={folder / 'checkpoints'}", f"--termination-log={folder / name}.term",
        *args,
    ]  # fmt: skip
    with (folder / f"{name}.log").open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def text(folder: Path, name: str) -> str:
    return (folder / f"{name}.log").read_text(errors="replace")


def wait_for(proc: subprocess.Popen[bytes], folder: Path, name: str, line: str) -> None:
    deadline = time.monotonic() + 120
    while line not in text(folder, name):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {line!r} in {name}:\n{text(folder, name)[-3000:]}")
        time.sleep(0.1)


def finish(proc: subprocess.Popen[bytes], folder: Path, name: str, timeout: float = 240) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{name} did not finish:\n{text(folder, name)[-3000:]}") from None


def scrape(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    return {
        (s.name, s.labels.get("name", "")): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_an_evaluator_scores_each_epoch_of_the_chief_and_exits_after_its_success(
    tmp_path: Path,
) -> None:
    cluster = {"chief": [f"127.0.0.1:{free_port()}"]}
    metrics_port = free_port()
    evaluator = launch(
        tmp_path, "evaluator", {"cluster": cluster, "task": {"type": "evaluator", "index": 0}},
        "--metrics-host=127.0.0.1", f"--metrics-port={metrics_port}",
    )  # fmt: skip
    chief = None
    try:
        wait_for(evaluator, tmp_path, "evaluator", "waiting for checkpoints")
        # Epochs of a few seconds: the evaluator (polling twice a second) sees each checkpoint.
        chief = launch(
            tmp_path, "chief", {"cluster": cluster, "task": {"type": "chief", "index": 0}},
            "--steps-per-epoch=2000", "--metrics-port=0",
            f"--output=file://{tmp_path / 'models'}",
        )  # fmt: skip
        wait_for(evaluator, tmp_path, "evaluator", "evaluation epoch 1/")
        served = scrape(metrics_port)
        assert served[("modelship_training_eval_epoch", "")] >= 1
        assert 0 <= served[("modelship_training_eval_metric", "accuracy")] <= 1
        assert served[("modelship_training_eval_metric", "loss")] > 0

        assert finish(chief, tmp_path, "chief") == 0, text(tmp_path, "chief")[-3000:]
        assert finish(evaluator, tmp_path, "evaluator", timeout=60) == 0, text(
            tmp_path, "evaluator"
        )[-3000:]
    finally:
        for proc in (evaluator, chief):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    chief_log, evaluator_log = text(tmp_path, "chief"), text(tmp_path, "evaluator")
    # One chief alone is the one-task path: the default strategy, Keras fit() with validation.
    assert "task single: single, _DefaultDistributionStrategy with 1 replica" in chief_log
    assert "exportedModelUri" in (tmp_path / "chief.term").read_text()
    assert not (tmp_path / "evaluator.term").exists()
    # The evaluator restored exactly the chief's weights of each epoch: its results are the
    # validation results fit() logged at that epoch's end.
    trained = {
        int(m[1]): (m[2], m[3])
        for m in re.finditer(
            r"^epoch (\d+)/\d+ .* val_accuracy=(\S+) val_loss=(\S+)$", chief_log, re.M
        )
    }
    evaluated = {
        int(m[1]): (m[2], m[3])
        for m in re.finditer(
            r"^evaluation epoch (\d+)/\d+ accuracy=(\S+) loss=(\S+)$", evaluator_log, re.M
        )
    }
    assert sorted(trained) == list(range(1, EPOCHS + 1)), chief_log[-3000:]
    assert evaluated == trained, evaluator_log[-3000:]
    assert f"training finished at epoch {EPOCHS}" in evaluator_log
    done = json.loads((tmp_path / "checkpoints" / "eval" / "DONE").read_text())
    assert done["epoch"] == EPOCHS
