"""Train → deploy for real: examples/trainingjob-local.yaml's chief and two workers run `modelship
train` as processes on the local cluster's process node, with the operator's TF_CONFIG, and the
progress the operator reads from the chief shows in `kubectl get` while they train. A worker is
killed mid-training: the trainers restart in place and resume from their checkpoints. The chief
exports to the cluster's S3 model store, and examples/modeldeployment-from-training.yaml serves
the export: the held-out digits are classified through the service proxy."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kube_helpers import apply, get, new_namespace, wait_ready
from modelship_localcluster.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
JOB = "digits"
TRAINING_LABEL = "modelship.dev/trainingjob"
ROLE_LABEL = "modelship.dev/replica-type"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return loaded


def _epochs(job: dict[str, Any]) -> int:
    args = job["spec"]["replicaSpecs"]["chief"]["args"]
    return int(next(a for a in args if a.startswith("--epochs=")).split("=", 1)[1])


def _pod(cluster: LocalCluster, ns: str, role: str, index: int) -> dict[str, Any]:
    """The newest pod of the role's Indexed Job with that completion index ({} if none)."""
    pods = get(cluster, ns, "pods", "-l", f"{TRAINING_LABEL}={JOB},{ROLE_LABEL}={role}") or {}
    found = [
        pod
        for pod in pods.get("items", [])
        if pod["metadata"].get("annotations", {}).get(INDEX_ANNOTATION) == str(index)
    ]
    if not found:
        return {}
    return dict(max(found, key=lambda pod: pod["metadata"]["creationTimestamp"]))


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def _kill(pod: dict[str, Any]) -> int:
    """SIGKILL the pod's trainer process, as an OOM kill or a crash would end it."""
    container_id = _container(pod).get("containerID", "")
    assert container_id.startswith("process://"), container_id
    pid = int(container_id.removeprefix("process://"))
    os.kill(pid, signal.SIGKILL)
    return pid


def _container_log(cluster: LocalCluster, ns: str, pod_name: str) -> str:
    """What the process node kept of the container's output, across its restarts."""
    path = cluster.logs / "pods" / f"{ns}_{pod_name}_tensorflow.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _predict(cluster: LocalCluster, url: str, instances: list[list[float]]) -> list[list[float]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": cluster.proxy_url}))
    request = urllib.request.Request(
        url,
        data=json.dumps({"instances": instances}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with opener.open(request, timeout=60) as response:
        predictions: list[list[float]] = json.loads(response.read())["predictions"]
    return predictions


@dataclass
class Watched:
    """What `kubectl get` showed while the job trained, and the kill."""

    status: dict[str, Any] = field(default_factory=dict)
    # (seconds since apply, state, status.progress) at each poll
    seen: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    table: str = ""  # `kubectl get trainingjobs` once progress showed
    killed: dict[str, Any] = field(default_factory=dict)
    # the killed pod's name and container restartCount, seen after the kill (cleanPodPolicy
    # Running may delete it when the chief succeeds first)
    victim_after: list[tuple[str, int]] = field(default_factory=list)

    def summary(self) -> list[tuple[int, str, Any, Any]]:
        return [(round(t), state, p.get("step"), p.get("percent")) for t, state, p in self.seen]


def _train_killing_a_worker(cluster: LocalCluster, ns: str, timeout: float = 240) -> Watched:
    """Poll the TrainingJob until it finishes; SIGKILL worker 1 once the status shows an epoch
    done (so checkpointed), early enough that most of the run is still to go."""
    watched = Watched()
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        watched.status = (get(cluster, ns, "trainingjob", JOB) or {}).get("status") or {}
        state = watched.status.get("state", "")
        progress = dict(watched.status.get("progress") or {})
        watched.seen.append((time.monotonic() - started, state, progress))
        if state in ("Succeeded", "Failed"):
            break
        if watched.killed:
            pod = _pod(cluster, ns, "worker", 1)
            if pod:
                restarts = _container(pod).get("restartCount", 0)
                watched.victim_after.append((pod["metadata"]["name"], restarts))
        if state == "Running" and "percent" in progress and not watched.table:
            watched.table = cluster.kubectl("get", "trainingjobs", "-n", ns).stdout
        if (
            not watched.killed
            and state == "Running"
            and progress.get("epoch", 0) >= 1
            and progress.get("step", 0) < progress.get("totalSteps", 0) * 6 // 10
        ):
            victim = _pod(cluster, ns, "worker", 1)
            assert victim, "no pod for worker 1"
            watched.killed = {
                "pod": victim["metadata"]["name"],
                "pid": _kill(victim),
                "epoch": progress["epoch"],
                "step": progress["step"],
                "at": time.monotonic() - started,
            }
        time.sleep(0.5)
    return watched


def _accuracy(cluster: LocalCluster, ns: str) -> tuple[float, int]:
    """The served model's accuracy on the example's held-out digits, through the proxy."""
    from modelship_server.training.examples import digits  # noqa: PLC0415 - imports TF

    images, labels = digits.test_split()
    predictions = _predict(
        cluster, f"http://{JOB}.{ns}.svc:8501/v1/models/{JOB}:predict", images.tolist()
    )
    assert len(predictions) == len(labels)
    right = sum(
        int(max(range(10), key=lambda k: row[k]) == int(label))
        for row, label in zip(predictions, labels, strict=True)
    )
    return right / len(labels), len(labels)


def test_distributed_training_shows_progress_survives_a_killed_worker_and_serves(
    operator: LocalCluster,
) -> None:
    ns = new_namespace(operator, "e2e-train")
    operator.model_store_secret(ns)
    manifest = _example("trainingjob-local.yaml")
    epochs = _epochs(manifest)
    started = time.monotonic()
    apply(operator, ns, manifest)
    watched = _train_killing_a_worker(operator, ns)
    trained_in = time.monotonic() - started
    status, summary, killed = watched.status, watched.summary(), watched.killed
    assert status.get("state") == "Succeeded", (status, summary)

    # Progress while running: the step grows and a percent shows, in `kubectl get` too.
    running = [p for _, state, p in watched.seen if state == "Running" and p.get("step")]
    steps = [p["step"] for p in running]
    assert len(set(steps)) >= 3, summary
    assert steps[-1] > steps[0], summary
    assert all(0 <= p["percent"] <= 100 for p in running), summary
    assert all(p["totalSteps"] == status["progress"]["totalSteps"] for p in running), summary
    header, row = watched.table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "STATE", "PROGRESS"], watched.table
    assert row.split()[1:2] == ["Running"], watched.table
    assert row.split()[2].isdigit(), watched.table

    # The kill: the worker's container restarted in place, and the trainers resumed at the
    # epoch they had checkpointed instead of at step 0.
    assert killed, f"training ended before a worker could be killed: {summary}"
    names = {name for name, _ in watched.victim_after}
    assert names == {killed["pod"]}, ("restarted in place, not replaced", watched.victim_after)
    assert max(restarts for _, restarts in watched.victim_after) >= 1, watched.victim_after
    log = _container_log(operator, ns, killed["pod"])
    resumed = [
        int(line.split()[3].rstrip(","))
        for line in log.splitlines()
        if line.startswith("resuming at epoch ")
    ]
    assert resumed, log[-3000:]
    # At least the epochs `kubectl get` had shown done at the kill (the status lags the trainer
    # by a poll), and not the whole run.
    assert killed["epoch"] <= resumed[-1] < epochs, (resumed, killed)
    steps_per_epoch = status["progress"]["totalSteps"] // epochs
    after_kill = [p["step"] for t, _, p in watched.seen if t > killed["at"] and "step" in p]
    assert min(after_kill) >= killed["epoch"] * steps_per_epoch, (killed, summary)

    # The export: a version under the job's output, in the final status with the last progress.
    exported = status.get("exportedModelUri", "")
    assert exported.startswith("s3://models/digits/"), status
    assert exported.rsplit("/", 1)[1].isdigit(), exported
    assert status["progress"]["step"] == status["progress"]["totalSteps"], status["progress"]

    # Serve it: the ModelDeployment names the job, and the held-out digits come back right.
    apply(operator, ns, _example("modeldeployment-from-training.yaml"))
    wait_ready(operator, ns, JOB, timeout=180)
    served_in = time.monotonic() - started
    accuracy, count = _accuracy(operator, ns)
    print(
        f"\ntrained in {trained_in:.0f}s (worker killed at {killed['at']:.0f}s, epoch "
        f"{killed['epoch']}, resumed at epoch {resumed[-1]}), served in {served_in:.0f}s, "
        f"held-out accuracy {accuracy:.3f} on {count} digits"
    )
    assert accuracy >= 0.90, accuracy
