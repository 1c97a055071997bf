"""TrainingJob start-up benchmark on the local control plane (pods on kwok nodes).

The time from `kubectl apply` of a TrainingJob with 1 chief and `--workers` workers until every
one of its pods has reached Running, against the floor: the same headless Service and the same
two Indexed Jobs, built by the operator's own builders, applied straight to the cluster with no
operator involved. The Jobs are the floor, not bare pods, because creating pods through Indexed
Jobs is the design (the Job controller brings backoff, deadlines, suspend, podFailurePolicy and
successPolicy); what the operator adds on top of that is its own cost: seeing the TrainingJob,
building and creating its children, and nothing it does in between may slow the Job controller.
Bare pods (the same pod specs, the Job controller's hostname and completion-index annotation
filled in) are measured too, as the floor of the floor: what the Job controller itself costs.

The three run side by side in each round (their order rotated from round to round, so neither
always follows the other), each in a fresh namespace; one warm-up round is not counted. Pods of
Jobs complete as soon as they run on kwok nodes, so a pod counts from the first time it is seen
Running or Succeeded (the apiserver is polled every `--poll` seconds from before the apply).

    .venv/bin/python bench/trainingjob_startup.py --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import shutil
import signal
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelship_localcluster import product
from modelship_localcluster.cli import install_crds
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.nodes import NodePool
from modelship_operator.api.trainingjob import TrainingJobSpec
from modelship_operator.resources.names import ObjectRef
from modelship_operator.resources.trainingjob.children import desired_children
from operator_scale import _apply, ready_namespace

ROOT = Path(__file__).resolve().parent.parent
NAME = "train"
POOL = "bench"
IMAGE = "tensorflow/tensorflow:2.21.0"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
MANAGED_BY = "app.kubernetes.io/managed-by"
VARIANTS = ("pods", "jobs", "operator")
STARTED = {"Running", "Succeeded"}


def _spec(workers: int) -> dict[str, Any]:
    """kwok nodes are labelled `type: kwok` (and their pool) and, for CPU pools, not tainted: the
    nodeSelector keeps every pod on this benchmark's pool. cleanPodPolicy None: kwok finishes a
    Job's pods as soon as they run, the chief's end ends the job, and the default policy would
    delete the worker Job while its last pods may still be starting."""
    role = {
        "image": IMAGE,
        "command": ["python", "/code/train.py"],
        "nodeSelector": {"type": "kwok", "modelship.dev/node-pool": POOL},
    }
    return {
        "replicaSpecs": {
            "chief": {"replicas": 1, **role},
            "worker": {"replicas": workers, **role},
        },
        "runPolicy": {"cleanPodPolicy": "None"},
    }


def _unmanaged(doc: dict[str, Any]) -> dict[str, Any]:
    """Not ours to manage: no owner, and out of the operator's watches (it selects on
    managed-by), so the floor measures the control plane alone."""
    doc["metadata"].pop("ownerReferences", None)
    doc["metadata"]["labels"][MANAGED_BY] = "bench"
    template = doc.get("spec", {}).get("template")
    if template:
        template["metadata"]["labels"][MANAGED_BY] = "bench"
    return doc


def _floor_jobs(namespace: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The Service and role Jobs the operator would create for this TrainingJob."""
    ref = ObjectRef(NAME, namespace, "00000000-0000-0000-0000-000000000000", 1, "TrainingJob")
    return [_unmanaged(doc) for doc in desired_children(ref, TrainingJobSpec.model_validate(spec))]


def _floor_pods(namespace: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods those Jobs would make, as the Job controller fills them in (the index annotation
    and label, the hostname `<job>-<index>`), created directly."""
    service, *jobs = _floor_jobs(namespace, spec)
    docs = [service]
    for job in jobs:
        template = job["spec"]["template"]
        for index in range(job["spec"]["completions"]):
            name = f"{job['metadata']['name']}-{index}"
            pod_spec = copy.deepcopy(template["spec"])
            pod_spec["hostname"] = name
            labels = {**template["metadata"]["labels"], COMPLETION_INDEX: str(index)}
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {COMPLETION_INDEX: str(index)},
                    },
                    "spec": pod_spec,
                }
            )
    return docs


def _training_job(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "modelship.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": NAME},
            "spec": spec,
        }
    ]


def _docs(variant: str, namespace: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    if variant == "pods":
        return _floor_pods(namespace, spec)
    if variant == "jobs":
        return _floor_jobs(namespace, spec)
    return _training_job(spec)


def _pods(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods")[
        "items"
    ]
    return items


def _startup(
    cluster: LocalCluster,
    namespace: str,
    docs: list[dict[str, Any]],
    expected: int,
    poll: float,
    timeout: float,
) -> tuple[float, float]:
    """Seconds from the apply to the first and to the last of `expected` pods started. The
    apply runs in a thread, so polling has begun before anything exists."""
    started: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        began = time.monotonic()
        applied = pool.submit(_apply, cluster, namespace, docs)
        while len(started) < expected:
            if applied.done() and applied.exception() is not None:
                raise RuntimeError(f"apply in {namespace} failed") from applied.exception()
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"{len(started)}/{expected} pods started in {namespace}")
            pods = _pods(cluster, namespace)
            seen = time.monotonic() - began
            for pod in pods:
                if pod.get("status", {}).get("phase") in STARTED:
                    started.setdefault(pod["metadata"]["name"], seen)
            time.sleep(poll)
        applied.result()
    return min(started.values()), max(started.values())


def _check_on_kwok(cluster: LocalCluster, namespace: str, expected: int) -> None:
    nodes = cluster.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
    kwok = {node["metadata"]["name"] for node in nodes}
    placed = [pod["spec"].get("nodeName") for pod in _pods(cluster, namespace)]
    if len(placed) != expected or not set(placed) <= kwok:
        raise RuntimeError(f"{namespace}: pods on {placed}, kwok nodes are {sorted(kwok)}")


def run(rounds: int, workers: int, poll: float, timeout: float) -> list[dict[str, Any]]:
    root = ROOT / ".cluster" / "bench-training"
    shutil.rmtree(root, ignore_errors=True)
    capacity = 2 * (rounds + 1) * len(VARIANTS) * (workers + 1) // 110 + 2
    # The control plane alone: Prometheus and the model store would only add noise.
    cluster = LocalCluster(
        root=root,
        pools=[NodePool(POOL, capacity, cpu="64", memory="256Gi", pods=110)],
        serving=False,
    )
    cluster.start()
    try:
        install_crds(cluster, ROOT / "crds")
        product.install_chart(cluster, ROOT / "charts" / "modelship")
        product.start_operator(cluster)
        time.sleep(2)  # the operator's watches are up and idle
        spec = _spec(workers)
        expected = workers + 1
        results = []
        for r in range(rounds + 1):
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            row: dict[str, Any] = {"round": r or "warm-up"}
            for variant in order:
                namespace = f"{variant}-{r}"
                ready_namespace(cluster, namespace)
                first, last = _startup(
                    cluster, namespace, _docs(variant, namespace, spec), expected, poll, timeout
                )
                _check_on_kwok(cluster, namespace, expected)
                row[variant] = round(last, 2)
                row[f"{variant}_first"] = round(first, 2)
            print(row, flush=True)
            if r:
                results.append(row)
        return results
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between pod lists")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    # A SIGTERM (timeout, kill) still stops the cluster: SystemExit runs run()'s finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = run(args.rounds, args.workers, args.poll, args.timeout)
    median = {v: statistics.median(row[v] for row in rows) for v in VARIANTS}
    first = {v: statistics.median(row[f"{v}_first"] for row in rows) for v in VARIANTS}
    print(f"{args.workers + 1} pods, medians of {len(rows)} rounds (seconds, first pod in ()):")
    for variant in VARIANTS:
        rounds = ", ".join(str(row[variant]) for row in rows)
        print(f"  {variant:9} {median[variant]:.2f} ({first[variant]:.2f})   rounds: {rounds}")
    print(f"  operator / jobs = {median['operator'] / median['jobs']:.2f}")
    print(f"  operator / pods = {median['operator'] / median['pods']:.2f}")
    print(f"  jobs / pods     = {median['jobs'] / median['pods']:.2f}")


if __name__ == "__main__":
    main()
