"""Autoscaler benchmark on the local cluster: real model-server pods (processes on the process
node), the real Prometheus scraping every second, the operator, and an open-loop load generator
through the cluster's service proxy.

- reaction: from a load step (0 → `--step-rate` requests/s, several times the per-pod target) to
  the operator's scale decision (its log), to the new count on the Deployment, to the new pods
  Ready. Repeated `--rounds` times; each round waits for the scale-down back to 1 first.
- stability: a steady load at exactly the target for 3 pods, with ±20 % noise changed every second,
  for `--stability-seconds`; counts replica changes after the count has settled. Target: 0.
- scale: `--objects` autoscaled ModelDeployments (pods on kwok nodes) whose metric comes from a
  synthetic exporter scraped by the same Prometheus; reports Prometheus queries per tick, the tick's
  duration and the operator's CPU per tick, from the operator's own metrics.

    .venv/bin/python bench/autoscale_reaction.py                      # all three
    .venv/bin/python bench/autoscale_reaction.py --phases reaction --rounds 5
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from modelship_localcluster import product
from modelship_localcluster.cli import install_crds
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.loadgen import LoadGenerator
from modelship_localcluster.nodes import DEFAULT_POOLS, NodePool
from operator_scale import ready_namespace

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"instances": [1.0, 2.0, 5.0]}).encode()
ON_PROCESS_NODE = {
    "nodeSelector": {"node.modelship.dev/runs-processes": "true"},
    "tolerations": [
        {"key": "node.modelship.dev/runs-processes", "operator": "Exists", "effect": "NoSchedule"}
    ],
}
TARGET = 10  # requests per second per pod


def _apply(cluster: LocalCluster, namespace: str, docs: list[dict[str, Any]]) -> None:
    for i in range(0, len(docs), 50):
        cluster.kubectl(
            "apply",
            "--server-side",
            "-n",
            namespace,
            "-f",
            "-",
            input_text=yaml.safe_dump_all(docs[i : i + 50]),
            timeout=300,
        )


def _get(cluster: LocalCluster, path: str) -> dict[str, Any]:
    got: dict[str, Any] = cluster.request("GET", path)
    return got


def _deployment(cluster: LocalCluster, ns: str, name: str) -> tuple[int, int]:
    dep = _get(cluster, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    return dep["spec"].get("replicas", 0), dep.get("status", {}).get("readyReplicas", 0)


def _wait(what: str, check: Callable[[], bool], timeout: float, every: float = 0.05) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.time()
        time.sleep(every)
    raise TimeoutError(f"{what} after {timeout}s")


def _serving_md(name: str, **autoscaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "storageUri": "s3://models/half-plus-two",
            "storageSecretName": "local-model-store",
            "autoscaling": autoscaling,
            **ON_PROCESS_NODE,
        },
    }


def _ready(cluster: LocalCluster, ns: str, name: str) -> bool:
    path = f"/apis/modelship.dev/v1alpha1/namespaces/{ns}/modeldeployments/{name}"
    conditions = _get(cluster, path).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _last_scale_time(cluster: LocalCluster, ns: str, name: str) -> float:
    """status.autoscaling.lastScaleTime: when the autoscaler decided (milliseconds)."""
    path = f"/apis/modelship.dev/v1alpha1/namespaces/{ns}/modeldeployments/{name}"
    stamp = _get(cluster, path)["status"].get("autoscaling", {}).get("lastScaleTime")
    if not stamp:
        return 0.0
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# ---- reaction ------------------------------------------------------------------------------------


def reaction(cluster: LocalCluster, rounds: int, step_rate: float) -> list[dict[str, float]]:
    ns = "bench-react"
    ready_namespace(cluster, ns)
    cluster.model_store_secret(ns)
    _apply(
        cluster,
        ns,
        [
            _serving_md(
                "react",
                minReplicas=1,
                maxReplicas=4,
                metric="requestsPerSecond",
                target=TARGET,
                behavior={"scaleDown": {"stabilizationWindowSeconds": 5}},
            )
        ],
    )
    _wait("react Ready", lambda: _ready(cluster, ns, "react"), 300, every=1)
    url = f"http://react.{ns}.svc:8501/v1/models/react:predict"
    results = []
    for _ in range(rounds):
        _wait("back at 1 pod", lambda: _deployment(cluster, ns, "react") == (1, 1), 300, 0.5)
        time.sleep(10)  # the rate window forgets the previous round
        results.append(_reaction_round(cluster, ns, url, step_rate))
        print("reaction round:", results[-1], flush=True)
    return results


def _reaction_round(cluster: LocalCluster, ns: str, url: str, rate: float) -> dict[str, float]:
    """One load step from idle: when the autoscaler decided, when the Deployment was told,
    when the new pods were Ready (seconds after the step)."""
    load = LoadGenerator(cluster.proxy_url, url, BODY)
    step = time.time()
    load.start(rate)
    # The first decision's time: a later one (a second step up) moves lastScaleTime on.
    decisions: list[float] = []

    def scaled_up() -> bool:
        stamp = _last_scale_time(cluster, ns, "react")
        if stamp > step and not decisions:
            decisions.append(stamp)
        return _deployment(cluster, ns, "react")[0] > 1

    try:
        scaled = _wait("the Deployment's new count", scaled_up, 120)
        if not decisions:
            decisions.append(_last_scale_time(cluster, ns, "react"))
        asked = _deployment(cluster, ns, "react")[0]

        def all_ready() -> bool:
            return _deployment(cluster, ns, "react")[1] >= asked

        ready = _wait("the new pods Ready", all_ready, 300, every=0.2)
    finally:
        result = load.stop()
    return {
        "decision_s": round(decisions[0] - step, 2),
        "deployment_s": round(scaled - step, 2),
        "pods_ready_s": round(ready - step, 2),
        "replicas": asked,
        "failed": result.failed,
    }


# ---- stability -----------------------------------------------------------------------------------


def stability(cluster: LocalCluster, seconds: float) -> dict[str, Any]:
    ns = "bench-steady"
    ready_namespace(cluster, ns)
    cluster.model_store_secret(ns)
    _apply(
        cluster,
        ns,
        [
            _serving_md(
                "steady", minReplicas=1, maxReplicas=6, metric="requestsPerSecond", target=10
            )
        ],
    )
    _wait("steady Ready", lambda: _ready(cluster, ns, "steady"), 300, every=1)
    base = 3 * TARGET  # exactly the target for 3 pods
    url = f"http://steady.{ns}.svc:8501/v1/models/steady:predict"
    load = LoadGenerator(cluster.proxy_url, url, BODY)
    load.start(base)
    rng = random.Random(7)
    try:
        _wait("3 pods ready", lambda: _deployment(cluster, ns, "steady") == (3, 3), 300, 0.5)
        time.sleep(15)  # let the count settle before counting
        counts = []
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            load.set_rate(base * rng.uniform(0.8, 1.2))
            counts.append(_deployment(cluster, ns, "steady")[0])
            time.sleep(1)
    finally:
        result = load.stop()
    changes = sum(1 for a, b in itertools.pairwise(counts) if a != b)
    return {
        "seconds": seconds,
        "replicas_seen": sorted(set(counts)),
        "scale_changes": changes,
        "requests": result.sent,
        "failed": result.failed,
    }


# ---- scale ---------------------------------------------------------------------------------------


class SyntheticExporter:
    """/metrics with one modelship_server_inflight_requests series per object, labelled as the
    cluster's pod discovery labels real model servers."""

    def __init__(self, namespace: str, names: list[str], value: float) -> None:
        lines = ["# TYPE modelship_server_inflight_requests gauge"]
        for name in names:
            labels = f'namespace="{namespace}",modeldeployment="{name}",pod="{name}-0"'
            lines.append(f"modelship_server_inflight_requests{{{labels}}} {value}")
        body = ("\n".join(lines) + "\n").encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _add_scrape_job(cluster: LocalCluster, port: int) -> None:
    config_path = cluster.root / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    config["scrape_configs"].append(
        {
            "job_name": "bench-synthetic",
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
    )
    config_path.write_text(yaml.safe_dump(config))
    request = urllib.request.Request(f"{cluster.prometheus_url}/-/reload", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def _prom_value(cluster: LocalCluster, query: str) -> float:
    url = f"{cluster.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scale(cluster: LocalCluster, objects: int, window: float) -> dict[str, Any]:
    ns = "bench-scale"
    ready_namespace(cluster, ns)
    names = [f"m{i:04d}" for i in range(objects)]
    exporter = SyntheticExporter(ns, names, value=4.0)
    _add_scrape_job(cluster, exporter.port)
    docs = [
        {
            "apiVersion": "modelship.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {
                "storageUri": "s3://models/half-plus-two",
                "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "target": 8},
            },
        }
        for name in names
    ]
    _apply(cluster, ns, docs)

    def all_active() -> bool:
        items = _get(cluster, f"/apis/modelship.dev/v1alpha1/namespaces/{ns}/modeldeployments")
        return (
            sum(
                any(
                    c["type"] == "ScalingActive" and c["status"] == "True"
                    for c in md.get("status", {}).get("conditions", [])
                )
                for md in items["items"]
            )
            >= objects
        )

    _wait(f"{objects} objects ScalingActive", all_active, 900, every=2)
    time.sleep(5)
    queries = "modelship_operator_autoscaler_prometheus_queries_total"
    ticks = "modelship_operator_autoscaler_tick_seconds_count"
    tick_sum = "modelship_operator_autoscaler_tick_seconds_sum"
    before = {q: _prom_value(cluster, q) for q in (queries, ticks, tick_sum)}
    cpu_before = _cpu_seconds(cluster.pids["operator"])
    time.sleep(window)
    cpu = _cpu_seconds(cluster.pids["operator"]) - cpu_before
    after = {q: _prom_value(cluster, q) for q in (queries, ticks, tick_sum)}
    n_ticks = after[ticks] - before[ticks]
    return {
        "objects": objects,
        "ticks": int(n_ticks),
        "queries_per_tick": round((after[queries] - before[queries]) / n_ticks, 2),
        "tick_ms_mean": round(1000 * (after[tick_sum] - before[tick_sum]) / n_ticks, 1),
        # All of the operator's CPU in the window (watches, resync included), per tick.
        "operator_cpu_ms_per_tick": round(1000 * cpu / n_ticks, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--phases", nargs="+", default=["reaction", "stability", "scale"], help="which to run"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step-rate", type=float, default=50.0, help="requests/s of the step")
    parser.add_argument("--stability-seconds", type=float, default=120)
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--window", type=float, default=60, help="seconds the scale phase samples")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag")
    args = parser.parse_args()

    # A SIGTERM (timeout, kill) still stops the cluster: SystemExit runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = ROOT / ".cluster" / "bench-autoscale"
    shutil.rmtree(root, ignore_errors=True)
    capacity = max(args.objects // 100 + 2, 2)
    pools = [*DEFAULT_POOLS, NodePool("bench", capacity, cpu="64", memory="256Gi", pods=110)]
    cluster = LocalCluster(root=root, pools=pools)
    cluster.start()
    try:
        install_crds(cluster, ROOT / "crds")
        product.install_chart(cluster, ROOT / "charts" / "modelship")
        product.start_operator(cluster, *args.operator_arg)
        report: dict[str, Any] = {}
        if "reaction" in args.phases:
            rounds = reaction(cluster, args.rounds, args.step_rate)
            report["reaction"] = {
                "rounds": rounds,
                "median": {
                    k: statistics.median(r[k] for r in rounds)
                    for k in ("decision_s", "deployment_s", "pods_ready_s")
                },
            }
        if "stability" in args.phases:
            report["stability"] = stability(cluster, args.stability_seconds)
            print("stability:", report["stability"], flush=True)
        if "scale" in args.phases:
            report["scale"] = scale(cluster, args.objects, args.window)
            print("scale:", report["scale"], flush=True)
        print(json.dumps(report, indent=2))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
