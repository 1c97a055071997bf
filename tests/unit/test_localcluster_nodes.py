"""Fake node shapes: GPU capacity, GPU Feature Discovery labels, taints."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.nodes import (
    DEFAULT_POOLS,
    KWOK_ANNOTATION,
    NodePool,
    build_node,
    build_nodes,
    load_pools,
    process_nodes,
)


def test_gpu_node_advertises_capacity_labels_and_taint() -> None:
    pool = NodePool(
        "gpu", 1, gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3", gpu_memory_mib=81559, gpu_taint=True
    )
    node = build_node(pool, 0)
    assert node["metadata"]["name"] == "gpu-0"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.memory"] == "81559"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert node["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]


def test_cpu_node_has_no_gpu_traits() -> None:
    node = build_node(NodePool("cpu", 1), 0)
    assert "nvidia.com/gpu" not in node["status"]["capacity"]
    assert not any(k.startswith("nvidia.com/") for k in node["metadata"]["labels"])
    assert node["spec"] == {}


def test_default_pools_mix_cpu_tainted_and_untainted_gpu_nodes() -> None:
    nodes = build_nodes(DEFAULT_POOLS)
    gpu = [n for n in nodes if "nvidia.com/gpu" in n["status"]["capacity"]]
    tainted = [n for n in gpu if n["spec"].get("taints")]
    assert len(nodes) > len(gpu) > len(tainted) > 0


def test_load_pools_reads_yaml_and_rejects_other_shapes() -> None:
    pools = load_pools("- {name: big, count: 3, gpus: 2, gpu_product: L4}\n")
    assert pools == [NodePool("big", 3, gpus=2, gpu_product="L4")]
    with pytest.raises(ValueError, match="YAML list"):
        load_pools("name: big\n")


def test_process_node_is_left_to_its_own_kubelet_and_taken_only_on_request() -> None:
    node = build_node(NodePool("process", 1, runs_processes=True), 0)
    assert KWOK_ANNOTATION not in node["metadata"]["annotations"]
    assert node["metadata"]["labels"]["node.modelship.dev/runs-processes"] == "true"
    assert node["spec"]["taints"] == [
        {"key": "node.modelship.dev/runs-processes", "value": "true", "effect": "NoSchedule"}
    ]
    kwok_node = build_node(NodePool("cpu", 1), 0)
    assert kwok_node["metadata"]["annotations"] == {KWOK_ANNOTATION: "fake"}
    assert "node.modelship.dev/runs-processes" not in kwok_node["metadata"]["labels"]


def test_default_pools_have_one_process_node() -> None:
    assert process_nodes(DEFAULT_POOLS) == ["process-0"]


def test_load_pools_takes_camel_case_as_manifests_spell_it() -> None:
    pools = load_pools("- {name: real, count: 2, runsProcesses: true, gpuProduct: L4}\n")
    assert pools == [NodePool("real", 2, runs_processes=True, gpu_product="L4")]
    assert process_nodes(pools) == ["real-0", "real-1"]


def test_cluster_folder_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cluster = LocalCluster(root=Path("relative/cluster"))
    assert cluster.root == tmp_path / "relative" / "cluster"
    assert cluster.kubeconfig.is_absolute()
