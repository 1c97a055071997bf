"""`modelship train` as real processes: one process, two MultiWorkerMirroredStrategy workers on
loopback (hand-written TF_CONFIG, no chief), a worker killed mid-training and the job restarted,
the progress endpoint scraped while training, and an export to a real S3 server. The exported
SavedModels are loaded by the model server's own runtime and scored on the digits the example
holds out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from modelship_server.runtime.savedmodel import load
from modelship_server.training.examples.digits import held_out
from prometheus_client.parser import text_string_to_metric_families
from storage_helpers import S3Server, modelship_fetch
from storage_servers import free_port

MODELSHIP = Path(sys.executable).parent / "modelship"
EXAMPLE = "modelship_server.training.examples.digits:model"
LOST_PEER = 138


@dataclass
class Task:
    proc: subprocess.Popen[bytes]
    log: Path
    termination: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.log.name} did not finish:\n{self.output()[-3000:]}"
            ) from None

    def message(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.termination.read_text())
        return result

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {self.log.name}:\n{self.output()[-3000:]}")
            time.sleep(0.1)


@pytest.fixture
def tasks() -> Iterator[list[Task]]:
    """Every process a test starts; any still running at the end is killed."""
    started: list[Task] = []
    yield started
    for task in started:
        if task.proc.poll() is None:
            task.proc.kill()
            task.proc.wait()


def start(
    tasks: list[Task],
    folder: Path,
    name: str,
    *args: str,
    tf_config: str | None = None,
    env: dict[str, str] | None = None,
) -> Task:
    log, termination = folder / f"{name}.log", folder / f"{name}.termination-log"
    home = folder / "home"
    home.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MODELSHIP_METRICS_PORT": "0",
        **({"TF_CONFIG": tf_config} if tf_config else {}),
        **(env or {}),
    }
    command = [str(MODELSHIP), "train", f"--model={EXAMPLE}", "--batch-size=64", *args]
    command.append(f"--termination-log={termination}")  # as the local cluster appends it
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    task = Task(proc, log, termination)
    tasks.append(task)
    return task


def saved_epoch(folder: Path) -> int:
    epoch: int = json.loads((folder / "training_metadata.json").read_text())["epoch"]
    return epoch


def workers_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def two_workers(tasks: list[Task], folder: Path, *args: str) -> tuple[Task, Task]:
    ports = [free_port(), free_port()]
    first, second = (
        start(tasks, folder, f"worker-{i}", *args, tf_config=workers_config(ports, i))
        for i in (0, 1)
    )
    return first, second


def held_out_accuracy(version: Path) -> float:
    """Accuracy on the held-out digits, through the model server's SavedModel runtime."""
    x, y = held_out()
    servable = load(str(version))
    try:
        outputs = servable.run("serving_default", {"pixels": x}, None)
    finally:
        servable.close()
    (probabilities,) = outputs.values()
    return float(np.mean(np.argmax(probabilities, axis=1) == y))


def versions(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.name.isdigit())


def test_one_process_trains_and_exports_a_servable_model(tmp_path: Path, tasks: list[Task]) -> None:
    output = tmp_path / "models" / "digits"
    task = start(
        tasks, tmp_path, "single", "--epochs=8", f"--output=file://{output}",
        f"--checkpoint-dir={tmp_path / 'checkpoints'}",
    )  # fmt: skip
    assert task.wait() == 0, task.output()[-3000:]
    (version,) = versions(output)
    message = task.message()
    assert message["exportedModelUri"] == f"file://{version}"
    assert int(version.name) <= time.time()
    progress = message["progress"]
    assert isinstance(progress, dict)
    assert progress["step"] == progress["totalSteps"] == 8 * (1437 // 64)
    assert progress["epoch"] == 8
    assert held_out_accuracy(version) >= 0.9
    # The state to resume from is removed once the export succeeded.
    assert not (tmp_path / "checkpoints" / "single").exists()


def test_two_workers_train_together_and_worker_0_exports(tmp_path: Path, tasks: list[Task]) -> None:
    output = tmp_path / "out"
    args = ("--epochs=6", f"--output=file://{output}", f"--checkpoint-dir={tmp_path / 'ck'}")
    first, second = two_workers(tasks, tmp_path, *args)
    assert first.wait() == 0, first.output()[-3000:]
    assert second.wait() == 0, second.output()[-3000:]
    assert "CollectiveAllReduceStrategy with 2 replicas" in first.output()
    (version,) = versions(output)  # worker 1 exported to a throwaway folder only
    assert first.message()["exportedModelUri"] == f"file://{version}"
    assert not second.termination.exists()
    assert held_out_accuracy(version) >= 0.9


def test_a_killed_worker_and_its_peer_resume_from_their_checkpoints(
    tmp_path: Path, tasks: list[Task]
) -> None:
    """What a pod restart sees: the killed worker's peer loses it mid-collective and exits 138
    (restartPolicy ExitCode retries 128+); MWMS needs every worker, so both tasks run again. The
    two may have saved epochs one apart; both resume at the lower one, not at 0."""
    checkpoints = tmp_path / "ck"
    args = ("--epochs=40", "--steps-per-epoch=5", f"--checkpoint-dir={checkpoints}")
    first, second = two_workers(tasks, tmp_path, *args)
    first.wait_for("epoch 4/40")
    second.proc.send_signal(signal.SIGKILL)
    assert second.wait() == -signal.SIGKILL
    assert first.wait(timeout=120) == LOST_PEER, first.output()[-3000:]
    assert first.termination.read_text().startswith("lost a peer")
    saved = [saved_epoch(checkpoints / f"worker-{i}") for i in (0, 1)]
    assert min(saved) >= 3
    if saved[0] == saved[1]:
        # Make the case where the killed worker died before saving the epoch its peer saved (the
        # kill's timing decides it otherwise): its previous state becomes its current one.
        for name in ("latest.weights.h5", "training_metadata.json"):
            shutil.copyfile(
                checkpoints / "worker-1" / f"{name}.bkp", checkpoints / "worker-1" / name
            )
        saved[1] -= 1
        assert saved_epoch(checkpoints / "worker-1") == saved[1]
    assert abs(saved[0] - saved[1]) == 1, saved

    (tmp_path / "again").mkdir()
    restarted = two_workers(tasks, tmp_path / "again", *args)
    first, second = restarted
    assert first.wait() == 0, first.output()[-3000:]
    assert second.wait() == 0, second.output()[-3000:]
    resumed = min(saved)
    ahead = restarted[saved.index(max(saved))]
    assert f"back to this task's epoch {resumed} state" in ahead.output()
    for task in restarted:
        assert f"resuming at epoch {resumed}, step {resumed * 5}" in task.output()
        epochs = [line for line in task.output().splitlines() if line.startswith("epoch ")]
        assert epochs[0].startswith(f"epoch {resumed + 1}/40")  # not epoch 1
        assert len(epochs) == 40 - resumed
    progress = first.message()["progress"]
    assert isinstance(progress, dict)
    assert progress["step"] == progress["totalSteps"] == 200


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("name")
            values[f"{sample.name}{{{label}}}" if label else sample.name] = sample.value
    return values


def test_the_progress_endpoint_counts_steps_while_training(
    tmp_path: Path, tasks: list[Task]
) -> None:
    port = free_port()
    env = {"MODELSHIP_POD_IP": "127.0.0.1", "MODELSHIP_METRICS_PORT": str(port)}
    args = ("--epochs=60", "--steps-per-epoch=5", f"--checkpoint-dir={tmp_path / 'ck'}")
    task = start(tasks, tmp_path, "single", *args, env=env)
    task.wait_for(f"progress on http://127.0.0.1:{port}/metrics")
    steps: list[float] = []
    seen: dict[str, float] = {}
    while task.proc.poll() is None and len(set(steps)) < 3:
        try:
            seen = scrape(port)
        except OSError:
            time.sleep(0.05)
            continue
        if seen.get("modelship_training_step"):
            steps.append(seen["modelship_training_step"])
        time.sleep(0.05)
    assert len(set(steps)) >= 3, f"steps seen: {steps}\n{task.output()[-3000:]}"
    assert steps == sorted(steps)
    assert seen["modelship_training_total_steps"] == 300
    assert "modelship_training_loss" in seen
    assert 0 <= seen["modelship_training_metric{accuracy}"] <= 1
    assert task.wait() == 0, task.output()[-3000:]


def test_export_to_s3_is_fetched_back_and_served(
    tmp_path: Path, tasks: list[Task], s3_server: S3Server
) -> None:
    s3_server.admin().create_bucket(Bucket="trained")
    args = ("--epochs=8", "--output=s3://trained/models/digits", f"--checkpoint-dir={tmp_path}/ck")
    task = start(tasks, tmp_path, "single", *args, env=s3_server.env())
    assert task.wait() == 0, task.output()[-3000:]
    exported = str(task.message()["exportedModelUri"])
    assert exported.startswith("s3://trained/models/digits/")
    listing = s3_server.admin().list_objects_v2(Bucket="trained", Prefix="models/digits/")
    keys = {obj["Key"].rsplit("/", 1)[-1] for obj in listing["Contents"]}
    assert {"saved_model.pb", "variables.index", "fingerprint.pb"} <= keys
    # `modelship fetch`, as a serving pod's init container, then the model server's runtime.
    dest = tmp_path / "fetched"
    dest.mkdir()
    fetched = modelship_fetch("s3://trained/models/digits", dest, env=s3_server.env())
    assert fetched.code == 0, fetched.stderr
    (version,) = versions(dest)
    assert exported.endswith(f"/{version.name}")
    assert held_out_accuracy(version) >= 0.9


def test_a_bad_model_exits_2_with_its_reason(tmp_path: Path, tasks: list[Task]) -> None:
    log = tmp_path / "termination"
    proc = subprocess.run(
        [str(MODELSHIP), "train", "--model=no_such_module:model", f"--termination-log={log}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "MODELSHIP_METRICS_PORT": "0"},
    )
    assert proc.returncode == 2
    assert "cannot import no_such_module" in log.read_text()


def test_parameter_server_training_is_coordinated_by_the_chief(
    tmp_path: Path, tasks: list[Task]
) -> None:
    """Chief, one worker and one parameter server: the worker and the ps serve until they are
    stopped (their pods are deleted when the chief's Job succeeds); the chief trains and
    exports."""
    ports = {role: free_port() for role in ("chief", "worker", "ps")}
    cluster = {role: [f"127.0.0.1:{port}"] for role, port in ports.items()}
    output = tmp_path / "out"
    args = ("--epochs=4", "--steps-per-epoch=20", f"--output=file://{output}")
    args += (f"--checkpoint-dir={tmp_path / 'ck'}",)
    started: dict[str, Task] = {}
    for role in ("ps", "worker", "chief"):
        config = json.dumps({"cluster": cluster, "task": {"type": role, "index": 0}})
        started[role] = start(tasks, tmp_path, role, *args, tf_config=config)
    chief = started["chief"]
    assert chief.wait() == 0, chief.output()[-3000:]
    assert "ParameterServerStrategy" in chief.output()
    for role in ("worker", "ps"):
        assert started[role].proc.poll() is None, f"{role} stopped: {started[role].output()}"
    (version,) = versions(output)
    assert chief.message()["exportedModelUri"] == f"file://{version}"
    assert held_out_accuracy(version) >= 0.85
