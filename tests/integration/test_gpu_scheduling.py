"""The real scheduler places GPU pods on kwok's GPU nodes, and explains when it cannot."""

from __future__ import annotations

import json
import time
from typing import Any

from kube_helpers import restricted
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.nodes import DEFAULT_POOLS, build_nodes

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _deployment(name: str, replicas: int, gpus: int, tolerate: bool) -> dict[str, Any]:
    labels = {"app": name}
    pod: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.example/gpu-job:1",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
    }
    if tolerate:
        pod["tolerations"] = [GPU_TOLERATION]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": restricted(pod)},
        },
    }


def _pods(cluster: LocalCluster, app: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-l", f"app={app}", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _node_labels(cluster: LocalCluster) -> dict[str, dict[str, str]]:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"] for n in nodes}


def test_nodes_advertise_gpus_labels_and_taints(cluster: LocalCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    for expected in build_nodes(DEFAULT_POOLS):
        live = by_name[expected["metadata"]["name"]]
        ready = [c for c in live["status"]["conditions"] if c["type"] == "Ready"]
        assert ready
        assert ready[0]["status"] == "True"
        gpus = expected["status"]["capacity"].get("nvidia.com/gpu")
        assert live["status"]["allocatable"].get("nvidia.com/gpu") == gpus
        assert live.get("spec", {}).get("taints") == expected["spec"].get("taints")
        for key in ("nvidia.com/gpu.product", "nvidia.com/gpu.memory", "nvidia.com/gpu.present"):
            assert live["metadata"]["labels"].get(key) == expected["metadata"]["labels"].get(key)


def test_gpu_pods_land_only_on_gpu_nodes_and_run(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(_deployment("gpu-ok", 4, 1, True)))
    cluster.kubectl("rollout", "status", "deployment/gpu-ok", "--timeout=90s")
    labels = _node_labels(cluster)
    pods = _pods(cluster, "gpu-ok")
    assert len(pods) == 4
    for pod in pods:
        node = pod["spec"]["nodeName"]
        assert labels[node].get("nvidia.com/gpu.present") == "true", node
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"]
    cluster.kubectl("delete", "deployment/gpu-ok", "--wait=true")


def test_untolerated_gpu_pods_avoid_tainted_nodes(cluster: LocalCluster) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input_text=json.dumps(_deployment("gpu-plain", 1, 1, False))
    )
    cluster.kubectl("rollout", "status", "deployment/gpu-plain", "--timeout=90s")
    labels = _node_labels(cluster)
    (pod,) = _pods(cluster, "gpu-plain")
    assert labels[pod["spec"]["nodeName"]]["modelship.dev/node-pool"] == "gpu-t4"
    cluster.kubectl("delete", "deployment/gpu-plain", "--wait=true")


def test_impossible_gpu_request_stays_pending_with_scheduler_reason(cluster: LocalCluster) -> None:
    most = max(p.gpus for p in DEFAULT_POOLS)
    too_many = _deployment("gpu-huge", 1, most + 1, True)
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(too_many))

    def unschedulable() -> str | None:
        for pod in _pods(cluster, "gpu-huge"):
            for cond in pod.get("status", {}).get("conditions", []):
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return str(cond["message"])
        return None

    message = _wait_for("the scheduler to give up on gpu-huge", unschedulable)
    assert "Insufficient nvidia.com/gpu" in message
    (pod,) = _pods(cluster, "gpu-huge")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    events = cluster.kubectl(
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={pod['metadata']['name']},reason=FailedScheduling",
        "-o",
        "json",
    ).stdout
    assert "Insufficient nvidia.com/gpu" in events
    cluster.kubectl("delete", "deployment/gpu-huge", "--wait=true")


def test_cpu_pods_run_and_become_ready(cluster: LocalCluster) -> None:
    deploy = _deployment("cpu-app", 2, 0, False)
    del deploy["spec"]["template"]["spec"]["containers"][0]["resources"]
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(deploy))
    cluster.kubectl("rollout", "status", "deployment/cpu-app", "--timeout=90s")
    cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=cpu-app", "--timeout=60s")
    cluster.kubectl("delete", "deployment/cpu-app", "--wait=true")


def test_every_component_logs_into_one_folder(cluster: LocalCluster) -> None:
    names = {p.stem for p in cluster.logs.glob("*.log")}
    components = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert components <= names, names  # and the operator's, once a test has started it
    assert (cluster.logs / "kube-apiserver.log").stat().st_size > 0
