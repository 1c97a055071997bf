"""Operator scale benchmark on the local control plane.

For each N: the same N Deployments and Services applied straight to the cluster (the floor: what
the controller-manager, scheduler and kwok need with no operator at all), then N ModelDeployments
through the operator. Reports the time until all are ready, the ratio of the two (measured side by
side in one run, so the machine's noise mostly cancels), the operator's API requests per
ModelDeployment as the apiserver's audit log counts them, the operator's peak RSS and CPU, and
the control plane's CPU in each phase (kubectl's own CPU in the floor is not counted).

    .venv/bin/python bench/operator_scale.py --counts 10 100 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from modelship_localcluster import product
from modelship_localcluster.cli import install_crds
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.nodes import NodePool
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.resources.deployment import build_deployment
from modelship_operator.resources.names import ModelDeploymentRef
from modelship_operator.resources.service import build_service

ROOT = Path(__file__).resolve().parent.parent
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
READS = {"get", "list"}
SPEC = {"storageUri": "s3://models/half_plus_two"}
REST_SECONDS = 10


def _apply(cluster: LocalCluster, namespace: str, docs: list[dict[str, Any]]) -> None:
    """Apply in parallel batches: kubectl applies one object at a time, and a serial apply of
    500 objects would measure kubectl more than the cluster."""
    batches = [docs[i : i + 50] for i in range(0, len(docs), 50)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda batch: cluster.kubectl(
                    "apply",
                    "--server-side",
                    "-n",
                    namespace,
                    "-f",
                    "-",
                    input_text=yaml.safe_dump_all(batch),
                    timeout=300,
                ),
                batches,
            )
        )


def _count_ready(cluster: LocalCluster, namespace: str, resource: str) -> int:
    items = json.loads(
        cluster.kubectl("get", resource, "-n", namespace, "-o", "json", timeout=120).stdout
    )["items"]
    if resource == "deployments":
        return sum(d.get("status", {}).get("availableReplicas", 0) >= 1 for d in items)
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in md.get("status", {}).get("conditions", [])
        )
        for md in items
    )


def _wait_all(
    cluster: LocalCluster, namespace: str, resource: str, n: int, began: float, timeout: float
) -> float:
    while time.monotonic() - began < timeout:
        if _count_ready(cluster, namespace, resource) >= n:
            return time.monotonic() - began
        time.sleep(0.5)
    raise TimeoutError(f"{resource} in {namespace} not all ready after {timeout}s")


def _plain_children(n: int, namespace: str) -> list[dict[str, Any]]:
    """The Deployment and Service a ModelDeployment would get, applied without the operator."""
    docs = []
    for i in range(n):
        ref = ModelDeploymentRef(f"d{i:04d}", namespace, "00000000-0000-0000-0000-000000000000", 1)
        for child in (
            build_deployment(ref, ModelDeploymentSpec.model_validate(SPEC)),
            build_service(ref),
        ):
            child["metadata"].pop("ownerReferences")
            # Not ours to manage: keep the operator's watches out of the floor measurement.
            child["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "bench"
            if child["kind"] == "Deployment":
                child["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/managed-by"] = (
                    "bench"
                )
            docs.append(child)
    return docs


def _model_deployments(n: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "modelship.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": f"m{i:04d}"},
            "spec": dict(SPEC),
        }
        for i in range(n)
    ]


def _operator_requests(cluster: LocalCluster, namespace: str) -> tuple[int, int]:
    """Reads and writes by the operator's identity: in the namespace, plus its cluster-wide
    list calls (start-up), which are shared by all objects."""
    reads = writes = 0
    for line in cluster.audit_log.read_text().splitlines():
        entry = json.loads(line)
        ns = entry.get("objectRef", {}).get("namespace")
        if ns not in (namespace, None):
            continue
        reads += entry["verb"] in READS
        writes += entry["verb"] in WRITES
    return reads, writes


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def ready_namespace(cluster: LocalCluster, name: str, timeout: float = 60) -> None:
    """A namespace with its default ServiceAccount (pods cannot be created before it); polled,
    since `kubectl wait` fails at once while the ServiceAccount does not exist yet."""
    cluster.kubectl("create", "namespace", name)
    began = time.monotonic()
    while cluster.kubectl("get", "serviceaccount/default", "-n", name, check=False).returncode:
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"no default ServiceAccount in {name}")
        time.sleep(0.1)


def run_one(
    n: int, workers: int, timeout: float, operator_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    root = ROOT / ".cluster" / "bench"
    shutil.rmtree(root, ignore_errors=True)
    capacity = max(n * 2 // 100 + 2, 4)  # both phases' pods fit, 110 pods a node
    # The control plane alone: Prometheus scraping and the model store would only add noise.
    cluster = LocalCluster(
        root=root,
        pools=[NodePool("cpu", capacity, cpu="64", memory="256Gi", pods=110)],
        serving=False,
    )
    cluster.start()
    try:
        install_crds(cluster, ROOT / "crds")
        product.install_chart(cluster, ROOT / "charts" / "modelship")
        product.start_operator(cluster, f"--workers={workers}", *operator_args)
        for namespace in ("floor", "operator"):
            ready_namespace(cluster, namespace)
        time.sleep(2)  # the operator's watches are up and idle

        cpu_floor = {name: _cpu_seconds(pid) for name, pid in cluster.pids.items()}
        began = time.monotonic()
        _apply(cluster, "floor", _plain_children(n, "floor"))
        floor_seconds = _wait_all(cluster, "floor", "deployments", n, began, timeout)

        cpu_before = {name: _cpu_seconds(pid) for name, pid in cluster.pids.items()}
        floor_cpu = sum(
            cpu_before[name] - cpu_floor[name] for name in cpu_before if name != "operator"
        )
        began = time.monotonic()
        _apply(cluster, "operator", _model_deployments(n))
        operator_seconds = _wait_all(cluster, "operator", "modeldeployments", n, began, timeout)
        time.sleep(3)  # status writes and events still in flight count too
        reads, writes = _operator_requests(cluster, "operator")
        cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in cluster.pids.items()}
        time.sleep(REST_SECONDS)  # all Ready: the operator should write nothing more
        at_rest = _operator_requests(cluster, "operator")[1] - writes
        return {
            "n": n,
            "floor_seconds": round(floor_seconds, 1),
            "operator_seconds": round(operator_seconds, 1),
            "ratio": round(operator_seconds / floor_seconds, 2),
            "reads_per_md": round(reads / n, 2),
            "writes_per_md": round(writes / n, 2),
            "peak_rss_mb": round(_peak_rss_mb(cluster.pids["operator"]), 1),
            "operator_cpu_s": round(cpu.pop("operator"), 1),
            "control_plane_cpu_s": round(sum(cpu.values()), 1),
            "floor_control_plane_cpu_s": round(floor_cpu, 1),
            "writes_at_rest": at_rest,
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--service-creates",
        type=int,
        default=None,
        help="the operator's --service-creates (default: the operator's own default)",
    )
    args = parser.parse_args()
    operator_args = (
        (f"--service-creates={args.service_creates}",) if args.service_creates is not None else ()
    )
    header = (
        "N",
        "floor s",
        "operator s",
        "ratio",
        "reads/MD",
        "writes/MD",
        "peak RSS MB",
        "operator CPU s",
        "control-plane CPU s",
        "floor control-plane CPU s",
        f"writes in {REST_SECONDS} s at rest",
    )
    print(" | ".join(header))
    for n in args.counts:
        row = run_one(n, args.workers, args.timeout, operator_args)
        print(" | ".join(str(v) for v in row.values()), flush=True)


if __name__ == "__main__":
    main()
