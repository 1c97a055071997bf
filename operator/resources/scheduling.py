"""GPU placement: the extended-resource limit, node affinity on GFD labels, taint tolerations."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from ..api.common import GPU, ResourceRequirements, Scheduling, Toleration

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def gpu_node_requirements(gpu: GPU | None) -> list[dict[str, Any]]:
    """matchExpressions every node of a GPU pod must satisfy."""
    if gpu is None or gpu.count == 0:
        return []
    requirements: list[dict[str, Any]] = []
    if gpu.product:
        requirements.append({"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [gpu.product]})
    if gpu.min_memory_mi_b:
        # Gt compares the label as an integer; "at least N" is "greater than N - 1".
        requirements.append(
            {"key": GPU_MEMORY_LABEL, "operator": "Gt", "values": [str(gpu.min_memory_mi_b - 1)]}
        )
    return requirements


def merge_affinity(
    user: dict[str, Any] | None, requirements: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The user's affinity with the GPU requirements ANDed into every required node term."""
    if not requirements:
        return copy.deepcopy(user) if user else None
    affinity = copy.deepcopy(user) if user else {}
    required = affinity.setdefault("nodeAffinity", {}).setdefault(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    )
    terms = required.setdefault("nodeSelectorTerms", [])
    if not terms:
        terms.append({})
    for term in terms:
        term["matchExpressions"] = [*term.get("matchExpressions", []), *requirements]
    return affinity


def tolerations(user: list[Toleration] | None, gpu: GPU | None) -> list[dict[str, Any]]:
    result = [t.model_dump(by_alias=True, exclude_none=True) for t in user or []]
    if gpu is not None and gpu.count > 0 and GPU_TOLERATION not in result:
        result.append(dict(GPU_TOLERATION))
    return result


def placement(pods: Scheduling, gpu: GPU | None) -> dict[str, Any]:
    """The pod-spec fields that place a pod: the user's nodeSelector, and tolerations and
    affinity with the GPU's added. Only the fields that have something in them."""
    fields: dict[str, Any] = {}
    if pods.node_selector:
        fields["nodeSelector"] = dict(pods.node_selector)
    found = tolerations(pods.tolerations, gpu)
    if found:
        fields["tolerations"] = found
    affinity = merge_affinity(pods.affinity, gpu_node_requirements(gpu))
    if affinity:
        fields["affinity"] = affinity
    return fields


def resources(base: dict[str, Any] | None, gpu: GPU | None) -> dict[str, Any]:
    """Container resources with the GPU count as a limit (extended resources need no request)."""
    result = {k: dict(v) for k, v in (base or {}).items() if v}
    if gpu is not None and gpu.count > 0:
        result.setdefault("limits", {})[GPU_RESOURCE] = str(gpu.count)
    return result


def cpu_request_cores(resources: ResourceRequirements | None) -> float | None:
    """The container's CPU request in cores (cpuUtilization is a percent of it), if set."""
    cpu = (resources.requests or {}).get("cpu") if resources else None
    if cpu is None:
        return None
    try:
        return float(parse_quantity(cpu))  # type: ignore[no-untyped-call]
    except ValueError:
        return None
