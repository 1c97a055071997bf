"""Indexed Jobs on a process node, as a TrainingJob's roles run there: the real Job controller
makes the pods (hostname `<job>-<index>`, the completion index annotation), the pods find each
other by `<hostname>.<subdomain>.<namespace>.svc` and all listen on the wildcard address with
the same port, and exits count for the Job as a kubelet's reports would."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from kube_helpers import new_namespace, restricted, wait_for
from modelship_localcluster.cluster import LocalCluster
from process_node import PROCESS_LABEL, ProcessNodeAgent, python_program, register_node, running

IMAGE = "example.test/peers:1"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
PORT = 2222

# The test image's program. `peer`: answer every connection with $ME on 0.0.0.0:2222 and ask
# the other index's pod for its answer, by name. `flaky`: exit 3 on the first run, 0 after.
# `exit N`: exit N. `tf`: a two-worker MultiWorkerMirroredStrategy all-reduce from TF_CONFIG.
PROGRAM = r"""
import json, os, socket, sys, threading, time

def peer():
    me, index = os.environ["ME"], int(os.environ["MODELSHIP_TASK_INDEX"])
    domain = ".cluster.local" if index else ""
    other = f"{os.environ['JOB']}-{1 - index}.{os.environ['JOB']}.{os.environ['NS']}.svc{domain}"
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 2222))
    server.listen()
    print("listening on", server.getsockname()[0], flush=True)
    served = threading.Event()

    def serve():
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall(me.encode())
            served.set()

    threading.Thread(target=serve, daemon=True).start()
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.create_connection((other, 2222), timeout=5) as conn:
                answer = conn.recv(100).decode()
            break
        except OSError as err:
            if time.monotonic() > deadline:
                print("cannot reach", other, err, flush=True)
                sys.exit(1)
            time.sleep(0.3)
    print("peer", other, "answered", answer, flush=True)
    served.wait(90)
    sys.exit(0 if answer == f"{os.environ['JOB']}-{1 - index}" else 1)

def flaky():
    marker = os.path.join(os.environ["STATE"], "ran")
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(3)

def tf():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ctx = tf.distribute.get_replica_context
    per_replica = strategy.run(lambda: ctx().replica_id_in_sync_group + 1)
    total = int(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
    print("sum", total, flush=True)
    sys.exit(0 if total == 3 else 1)

mode = sys.argv[1]
if mode == "exit":
    sys.exit(int(sys.argv[2]))
{"peer": peer, "flaky": flaky, "tf": tf}[mode]()
"""


@pytest.fixture(scope="module")
def node(cluster: LocalCluster) -> Iterator[str]:
    name = register_node(cluster, "process-dns")
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def process_node(
    cluster: LocalCluster, node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessNodeAgent]:
    root = tmp_path_factory.mktemp("processpods-dns")
    script = root / "peers.py"
    script.write_text(PROGRAM)
    peers = python_program(root / "peers", script)
    with running(ProcessNodeAgent(cluster, node, root, {"example.test/peers": peers})) as agent:
        yield agent


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = new_namespace(cluster, "ppdns")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---- helpers ---------------------------------------------------------------------------------


def headless_service(cluster: LocalCluster, namespace: str, name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"job-name": name},
            "ports": [{"name": "tf", "port": PORT}],
        },
    }
    cluster.request("POST", f"/api/v1/namespaces/{namespace}/services", body)


def indexed_job(
    cluster: LocalCluster,
    namespace: str,
    node: str,
    name: str,
    args: list[str],
    *,
    replicas: int = 2,
    restart_policy: str = "Never",
    backoff_limit: int = 0,
    env: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> None:
    """An Indexed Job whose pods go to the test's process node through its label and taint (the
    hostname label only keeps them off the cluster's own process node)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "args": args,
        "env": [
            {
                "name": "MODELSHIP_TASK_INDEX",
                "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}
                },
            },
            *(env or []),
        ],
        "ports": [{"name": "tf", "containerPort": PORT}],
    }
    if volumes:
        container["volumeMounts"] = [{"name": v["name"], "mountPath": "/state"} for v in volumes]
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": replicas,
            "parallelism": replicas,
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "subdomain": name,
                    "restartPolicy": restart_policy,
                    "terminationGracePeriodSeconds": 5,
                    "nodeSelector": {PROCESS_LABEL: "true", "kubernetes.io/hostname": node},
                    "tolerations": [
                        {"key": PROCESS_LABEL, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [container],
                    "volumes": volumes or [],
                }
            },
        },
    }
    restricted(body["spec"]["template"]["spec"])
    cluster.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)


def job_condition(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    job = cluster.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    for cond in job.get("status", {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return dict(cond)
    return None


def job_pods(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = cluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{name}"
    )
    return sorted(listed.get("items") or [], key=lambda p: p["metadata"]["creationTimestamp"])


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    (status,) = pod["status"]["containerStatuses"]
    return dict(status["state"].get("terminated") or {})


def finished(
    cluster: LocalCluster,
    process_node: ProcessNodeAgent,
    namespace: str,
    name: str,
    *,
    expect: str,
    timeout: float,
) -> dict[str, Any]:
    """The Job's final condition, which must be `expect`; otherwise the pods' logs say why."""
    try:
        done: dict[str, Any] = wait_for(
            f"job {name} to finish", lambda: job_condition(cluster, namespace, name), timeout
        )
    except AssertionError as err:
        done = {"type": "(none)", "error": str(err)}
    if done["type"] != expect:
        logs = {
            p["metadata"]["name"]: process_node.container_log(namespace, p["metadata"]["name"])
            for p in job_pods(cluster, namespace, name)
        }
        raise AssertionError(f"job {name}: {done}\n{logs}\n{process_node.log.read_text()[-3000:]}")
    return done


# ---- tests -----------------------------------------------------------------------------------


def test_indexed_job_pods_reach_each_other_by_name_on_one_port(
    cluster: LocalCluster, namespace: str, node: str, process_node: ProcessNodeAgent
) -> None:
    headless_service(cluster, namespace, "pair")
    env: list[dict[str, Any]] = [
        # $(VAR) expands the index read from the annotation just before it.
        {"name": "ME", "value": "pair-$(MODELSHIP_TASK_INDEX)"},
        {"name": "JOB", "value": "pair"},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    indexed_job(cluster, namespace, node, "pair", ["peer"], env=env)
    finished(cluster, process_node, namespace, "pair", expect="Complete", timeout=120)
    pods = job_pods(cluster, namespace, "pair")
    assert sorted(p["spec"]["hostname"] for p in pods) == ["pair-0", "pair-1"]
    addresses = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] == node
        assert pod["status"]["phase"] == "Succeeded"
        state = terminated(pod)
        assert (state["exitCode"], state["reason"]) == (0, "Completed")
        index = int(pod["metadata"]["annotations"][INDEX_ANNOTATION])
        other = f"pair-{1 - index}"
        log = process_node.container_log(namespace, name)
        # Each listened on its own address, and got the other pod's answer by name.
        assert f"listening on {pod['status']['podIP']}\n" in log, log
        assert f"answered {other}\n" in log, log
        addresses.add(pod["status"]["podIP"])
    assert len(addresses) == 2
    # Finished pods are out of the Service's endpoints: their names are gone again.
    hosts = process_node.root / "work" / "hosts"
    wait_for("the finished pods' names to go", lambda: "pair-0." not in hosts.read_text())
    assert f"pair-1.pair.{namespace}.svc" not in hosts.read_text()


def test_exit_codes_count_for_the_job_as_a_kubelet_reports_them(
    cluster: LocalCluster, namespace: str, node: str, process_node: ProcessNodeAgent
) -> None:
    indexed_job(cluster, namespace, node, "fails", ["exit", "3"], replicas=1)
    empty_dir = [{"name": "state", "emptyDir": {}}]
    indexed_job(
        cluster,
        namespace,
        node,
        "flaky",
        ["flaky"],
        replicas=1,
        restart_policy="OnFailure",
        backoff_limit=2,
        env=[{"name": "STATE", "value": "/state"}],
        volumes=empty_dir,
    )
    failed = finished(cluster, process_node, namespace, "fails", expect="Failed", timeout=90)
    assert failed["reason"] == "BackoffLimitExceeded", failed
    (pod,) = job_pods(cluster, namespace, "fails")
    assert pod["status"]["phase"] == "Failed"
    state = terminated(pod)
    assert (state["exitCode"], state["reason"]) == (3, "Error")

    # OnFailure: restarted in place after exit 3, then done.
    finished(cluster, process_node, namespace, "flaky", expect="Complete", timeout=90)
    (pod,) = job_pods(cluster, namespace, "flaky")
    assert pod["status"]["phase"] == "Succeeded"
    (status,) = pod["status"]["containerStatuses"]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert (status["state"]["terminated"]["exitCode"], status["state"]["terminated"]["reason"]) == (
        0,
        "Completed",
    )


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="no TensorFlow")
def test_tensorflow_workers_all_reduce_across_pods(
    cluster: LocalCluster, namespace: str, node: str, process_node: ProcessNodeAgent
) -> None:
    headless_service(cluster, namespace, "tj-worker")
    workers = [f"tj-worker-{i}.tj-worker.{namespace}.svc:{PORT}" for i in range(2)]
    tf_config = (
        '{"cluster": {"worker": ["' + '", "'.join(workers) + '"]}, '
        '"task": {"type": "worker", "index": $(MODELSHIP_TASK_INDEX)}}'
    )
    indexed_job(
        cluster,
        namespace,
        node,
        "tj-worker",
        ["tf"],
        env=[{"name": "TF_CONFIG", "value": tf_config}],
    )
    finished(cluster, process_node, namespace, "tj-worker", expect="Complete", timeout=240)
    for pod in job_pods(cluster, namespace, "tj-worker"):
        assert "sum 3\n" in process_node.container_log(namespace, pod["metadata"]["name"])
