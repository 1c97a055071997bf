"""The operator survives a crash mid-reconcile, and leaves a settled cluster alone."""

from __future__ import annotations

import json
import time

import yaml
from kube_helpers import get, model_deployment, new_namespace, operator_writes, wait_for
from modelship_localcluster import product
from modelship_localcluster.cluster import LocalCluster

READS = ("get", "list")


def _apply_many(cluster: LocalCluster, namespace: str, count: int, **spec: object) -> list[str]:
    names = [f"m{i:03d}" for i in range(count)]
    docs = [model_deployment(name, **spec) for name in names]
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(docs)
    )
    return names


def _all_ready(cluster: LocalCluster, namespace: str, names: list[str]) -> bool:
    items = get(cluster, namespace, "modeldeployments")["items"]
    ready = {
        md["metadata"]["name"]
        for md in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in md.get("status", {}).get("conditions", [])
        )
        and md["status"].get("observedGeneration") == md["metadata"]["generation"]
    }
    return ready >= set(names)


def test_killed_mid_reconcile_then_restarted_converges_without_duplicates(
    operator: LocalCluster,
) -> None:
    ns = new_namespace(operator, "crash")
    names = _apply_many(operator, ns, 60, replicas=2)

    def some_deployments() -> int:
        return len(
            [
                w
                for w in operator_writes(operator, ns)
                if w["objectRef"]["resource"] == "deployments"
            ]
        )

    wait_for("the operator to start creating Deployments", some_deployments, timeout=30)
    product.kill_operator(operator)  # SIGKILL: no chance to finish or clean up
    created_before_kill = len(get(operator, ns, "deployments")["items"])
    product.start_operator(operator, "--resync-seconds=15")

    wait_for("every ModelDeployment Ready", lambda: _all_ready(operator, ns, names), timeout=120)
    deployments = get(operator, ns, "deployments")["items"]
    services = get(operator, ns, "services")["items"]
    replicasets = get(operator, ns, "replicasets")["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == names, created_before_kill
    assert sorted(s["metadata"]["name"] for s in services) == names
    # One ReplicaSet each: nothing was rolled twice by a confused restart.
    owners = [rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets]
    assert sorted(owners) == names
    pods = get(operator, ns, "pods")["items"]
    assert len(pods) == 2 * len(names)


def test_settled_cluster_gets_no_writes_and_no_reads(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "steady")
    names = _apply_many(operator, ns, 20)
    wait_for("every ModelDeployment Ready", lambda: _all_ready(operator, ns, names), timeout=120)
    time.sleep(3)  # let the last status writes and events land

    def requests() -> tuple[int, int]:
        writes = len(operator_writes(operator))
        reads = 0
        for line in operator.audit_log.read_text().splitlines():
            reads += json.loads(line)["verb"] in READS
        return writes, reads

    writes_before, reads_before = requests()
    # A minute, with the operator's periodic resync (every 15 s here) passing over all of them.
    time.sleep(60)
    writes_after, reads_after = requests()
    assert writes_after - writes_before == 0, "writes while nothing changed"
    assert reads_after - reads_before == 0, "reads while nothing changed (caches should serve)"
    assert _all_ready(operator, ns, names)
