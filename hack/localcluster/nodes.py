"""Node shapes: fake CPU and GPU nodes for kwok (GPU Feature Discovery labels), and process
nodes whose pods run as real processes (their kubelet is modelship_localcluster.processpods)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
# kwok manages only nodes carrying this annotation.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
# Process nodes: labelled so pods (and Prometheus) can find them, tainted so only pods that ask
# for a real process land there.
RUNS_PROCESSES_LABEL = "node.modelship.dev/runs-processes"
RUNS_PROCESSES_TAINT = {"key": RUNS_PROCESSES_LABEL, "value": "true", "effect": "NoSchedule"}


@dataclass(frozen=True)
class NodePool:
    """`count` identical nodes named `<name>-<i>`."""

    name: str
    count: int
    cpu: str = "16"
    memory: str = "64Gi"
    pods: int = 110
    gpus: int = 0
    gpu_product: str | None = None
    gpu_memory_mib: int | None = None
    gpu_taint: bool = False
    runs_processes: bool = False


DEFAULT_POOLS = (
    NodePool("cpu", 2),
    NodePool("process", 1, runs_processes=True),
    NodePool(
        "gpu-a100",
        2,
        cpu="32",
        memory="256Gi",
        gpus=4,
        gpu_product="NVIDIA-A100-SXM4-40GB",
        gpu_memory_mib=40960,
        gpu_taint=True,
    ),
    NodePool(
        "gpu-t4",
        1,
        cpu="8",
        memory="32Gi",
        gpus=1,
        gpu_product="Tesla-T4",
        gpu_memory_mib=15360,
    ),
)


def build_node(pool: NodePool, index: int) -> dict[str, Any]:
    """One Node object, with capacity in its status so kwok keeps it."""
    name = f"{pool.name}-{index}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "process" if pool.runs_processes else "kwok",
        "modelship.dev/node-pool": pool.name,
    }
    annotations = {} if pool.runs_processes else {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE}
    capacity: dict[str, str] = {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.pods)}
    taints: list[dict[str, str]] = []
    if pool.gpus:
        capacity[GPU_RESOURCE] = str(pool.gpus)
        labels[GPU_PRESENT_LABEL] = "true"
        labels[GPU_COUNT_LABEL] = str(pool.gpus)
        if pool.gpu_product:
            labels[GPU_PRODUCT_LABEL] = pool.gpu_product
        if pool.gpu_memory_mib:
            labels[GPU_MEMORY_LABEL] = str(pool.gpu_memory_mib)
        if pool.gpu_taint:
            taints.append({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"})
    if pool.runs_processes:
        labels[RUNS_PROCESSES_LABEL] = "true"
        taints.append(dict(RUNS_PROCESSES_TAINT))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def build_nodes(pools: tuple[NodePool, ...] | list[NodePool]) -> list[dict[str, Any]]:
    return [build_node(pool, i) for pool in pools for i in range(pool.count)]


def process_nodes(pools: tuple[NodePool, ...] | list[NodePool]) -> list[str]:
    """Names of the nodes whose pods run as real processes."""
    return [f"{pool.name}-{i}" for pool in pools if pool.runs_processes for i in range(pool.count)]


def _snake_case(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def load_pools(text: str) -> list[NodePool]:
    """Node pools from YAML: a list of mappings with NodePool's fields, in snake_case or in
    camelCase as Kubernetes manifests spell them (`runsProcesses: true`)."""
    entries = yaml.safe_load(text) or []
    if not isinstance(entries, list):
        raise ValueError("node pool file must hold a YAML list of pools")
    return [NodePool(**{_snake_case(k): v for k, v in entry.items()}) for entry in entries]
