"""Operator scale benchmark on the local control plane.

For each N: the same N Deployments and Services applied straight to the cluster (the floor: what
the controller-manager, scheduler and kwok need with no operator at all), then N ModelDeployments
through the operator. Reports the time until all are ready, the ratio of the two (measured side by
side in one run, so the machine's noise mostly cancels), the operator's API requests per
ModelDeployment as the apiserver's audit log counts them, the operator's peak RSS and CPU, and
the control plane's CPU in each phase.

Both phases go through the same Python client, so they are treated alike and the benchmark's own
CPU stays out of both: server-side apply with no client-side rate limit (kubectl's 5 requests/s
per process capped the floor near the control plane's own rate), and one watch per phase instead
of polling `kubectl get` (each poll cost a list's encoding and decoding, and the longer operator
phase paid for many more of them).

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

from kubernetes import client, config
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
APPLY_THREADS = 8
PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "ModelDeployment": "/apis/modelship.dev/v1alpha1/namespaces/{ns}/modeldeployments/{name}",
}


def _api_client(cluster: LocalCluster) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = APPLY_THREADS + 1  # and the watch
    return client.ApiClient(configuration)


def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    query: dict[str, Any],
    timeout: float | tuple[float, float] = 60,
    body: dict[str, Any] | None = None,
    content_type: str | None = None,
) -> Any:
    """The RESTResponse, its body unread: raw JSON, never deserialized into models."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = api.param_serialize(
        method,
        path,
        query_params=query,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    return api.call_api(*request, _request_timeout=timeout)


def _apply(api: client.ApiClient, namespace: str, docs: list[dict[str, Any]]) -> None:
    """Server-side apply, one PATCH per object from 8 threads, through the Python client: it has
    no client-side rate limit, where kubectl's 5 requests/s per process throttled the floor."""

    def apply(doc: dict[str, Any]) -> None:
        path = PATHS[doc["kind"]].format(ns=namespace, name=doc["metadata"]["name"])
        response = _call(
            api,
            "PATCH",
            path,
            {"fieldManager": "bench"},
            body=doc,
            content_type="application/apply-patch+yaml",
        )
        body = response.read()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"apply {path}: {response.status} {body.decode()}")

    with ThreadPoolExecutor(max_workers=APPLY_THREADS) as pool:
        list(pool.map(apply, docs))


def _ready(kind: str, obj: dict[str, Any]) -> bool:
    status = obj.get("status", {})
    if kind == "Deployment":
        return bool(status.get("availableReplicas", 0) >= 1)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


class _WatchExpiredError(Exception):
    """410 Gone: the resourceVersion left the apiserver's window; only a fresh list resumes."""


def _list(api: client.ApiClient, collection: str, kind: str) -> tuple[set[str], str]:
    """The names that are ready now, and the resourceVersion to watch from."""
    response = _call(api, "GET", collection, {})
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"list {collection}: {response.status} {body.decode()}")
    page = json.loads(body)
    ready = {obj["metadata"]["name"] for obj in page["items"] if _ready(kind, obj)}
    return ready, str(page["metadata"]["resourceVersion"])


def _watch(
    api: client.ApiClient,
    collection: str,
    kind: str,
    version: str,
    ready: set[str],
    n: int,
    seconds: float,
) -> str:
    """Follow changes from `version`, keeping `ready` current, until n are ready or the server
    ends the watch after `seconds`; the version to resume from."""
    query = {
        "watch": "true",
        "resourceVersion": version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": max(1, int(seconds)),
    }
    response = _call(api, "GET", collection, query, timeout=(10, seconds + 30))
    stream = response.response
    try:
        if response.status == 410:
            raise _WatchExpiredError
        if response.status != 200:
            raise RuntimeError(f"watch {collection}: {response.status} {stream.data.decode()}")
        pending = b""
        for chunk in stream.stream(amt=None, decode_content=False):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind_of_event, obj = event["type"], event["object"]
                if kind_of_event == "ERROR":
                    if obj.get("code") == 410:
                        raise _WatchExpiredError
                    raise RuntimeError(f"watch {collection}: {obj.get('message')}")
                version = str(obj["metadata"]["resourceVersion"])
                if kind_of_event == "BOOKMARK":
                    continue
                if kind_of_event != "DELETED" and _ready(kind, obj):
                    ready.add(obj["metadata"]["name"])
                else:
                    ready.discard(obj["metadata"]["name"])
                if len(ready) >= n:
                    return version
        return version
    finally:
        stream.close()  # a watch left mid-stream: its connection cannot be reused
        stream.release_conn()


def _phase(
    api: client.ApiClient,
    namespace: str,
    docs: list[dict[str, Any]],
    kind: str,
    n: int,
    timeout: float,
) -> float:
    """Seconds until the apply is done and n objects of `kind` are ready, seen on one watch."""
    began = time.monotonic()
    collection = PATHS[kind].removesuffix("/{name}").format(ns=namespace)
    # Listed before the apply begins, so the watch sees every transition.
    ready, version = _list(api, collection, kind)
    with ThreadPoolExecutor(max_workers=1) as pool:
        applying = pool.submit(_apply, api, namespace, docs)
        while len(ready) < n:
            remaining = timeout - (time.monotonic() - began)
            if remaining <= 0:
                raise TimeoutError(f"{kind}s in {namespace} not all ready after {timeout}s")
            if applying.done():
                applying.result()  # an apply that failed ends the wait
            try:
                version = _watch(api, collection, kind, version, ready, n, min(remaining, 60))
            except _WatchExpiredError:
                ready, version = _list(api, collection, kind)
        applying.result()
    return time.monotonic() - began


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
        api = _api_client(cluster)
        for namespace in ("floor", "operator"):
            ready_namespace(cluster, namespace)
        time.sleep(2)  # the operator's watches are up and idle

        cpu_floor = {name: _cpu_seconds(pid) for name, pid in cluster.pids.items()}
        floor_docs = _plain_children(n, "floor")
        floor_seconds = _phase(api, "floor", floor_docs, "Deployment", n, timeout)

        cpu_before = {name: _cpu_seconds(pid) for name, pid in cluster.pids.items()}
        floor_cpu = sum(
            cpu_before[name] - cpu_floor[name] for name in cpu_before if name != "operator"
        )
        operator_docs = _model_deployments(n)
        operator_seconds = _phase(api, "operator", operator_docs, "ModelDeployment", n, timeout)
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
