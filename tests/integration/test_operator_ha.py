"""High availability on the real control plane: operator processes with --leader-elect share a
coordination.k8s.io/v1 Lease, exactly one of them writes, a SIGKILLed leader is replaced within
15 s and a SIGTERMed one hands over within 2 s. The apiserver's audit log (the user agent names
the process) shows writes from one process at a time."""

from __future__ import annotations

import datetime
import os
import re
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import get, model_deployment, new_namespace, operator_writes, wait_for
from modelship_localcluster import product
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.components.apiserver import OPERATOR_NAMESPACE
from modelship_localcluster.components.process import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
USER_AGENT = re.compile(r"^modelship-operator/(\S+)")
CANDIDATE = re.compile(r"leader election: candidate (\S+) for Lease")


@dataclass
class Replica:
    name: str  # the process name in the cluster's supervisor (its log: logs/<name>.log)
    metrics_port: int
    identity: str = ""

    def leader_gauge(self) -> float | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as response:
                text = response.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("modelship_operator_leader "):
                return float(line.split()[1])
        return None


class Replicas:
    def __init__(self, cluster: LocalCluster, namespace: str, lease: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.lease = lease
        self.started: list[Replica] = []

    def start(self, name: str) -> Replica:
        replica = Replica(name=name, metrics_port=free_port())
        command = product.operator_command(
            sys.executable,
            self.cluster.root / "pki" / "operator.kubeconfig",
            replica.metrics_port,
            free_port(),
            None,
            (
                "--leader-elect",
                f"--leader-election-namespace={OPERATOR_NAMESPACE}",
                f"--leader-election-id={self.lease}",
                f"--namespace={self.namespace}",
                "--resync-seconds=30",
            ),
            dict(os.environ),
        )
        self.cluster.spawn(name, command)
        self.started.append(replica)
        log = self.cluster.logs / f"{name}.log"

        def identity() -> str | None:
            found = CANDIDATE.findall(log.read_text(errors="replace")) if log.exists() else []
            return found[-1] if found else None

        replica.identity = wait_for(f"{name} to stand as a candidate", identity, timeout=30)
        return replica

    def signal(self, replica: Replica, sig: int) -> None:
        os.kill(self.cluster.pids[replica.name], sig)

    def reap(self, replica: Replica) -> None:
        self.cluster.supervisor.kill(replica.name, signal.SIGKILL)
        self.cluster.save_state()

    def holder(self) -> dict[str, Any]:
        lease = get(self.cluster, OPERATOR_NAMESPACE, "lease", self.lease)
        return dict((lease or {}).get("spec") or {})

    def stop_all(self) -> None:
        for replica in self.started:
            self.cluster.supervisor.stop(replica.name)
        self.cluster.save_state()


@pytest.fixture
def replicas(crds_installed: LocalCluster) -> Iterator[Replicas]:
    """Operators with leader election, watching one new namespace. The session's operator (no
    leader election) is stopped meanwhile: it would write too, and is restarted afterwards."""
    cluster = crds_installed
    product.install_chart(cluster, ROOT / "charts" / "modelship")
    session_operator = cluster.supervisor.alive(product.OPERATOR)
    if session_operator:
        cluster.supervisor.stop(product.OPERATOR)
    namespace = new_namespace(cluster, "ha")
    group = Replicas(cluster, namespace, f"ha-{uuid.uuid4().hex[:6]}")
    try:
        yield group
    finally:
        group.stop_all()
        # Gone before the session's operator is back: it would reconcile a terminating namespace
        # while later tests count its writes.
        cluster.kubectl("delete", "namespace", namespace, "--timeout=120s", timeout=150)
        if session_operator:
            product.start_operator(cluster, "--resync-seconds=15")


def _apply(cluster: LocalCluster, namespace: str, names: list[str]) -> None:
    docs = [model_deployment(name) for name in names]
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(docs)
    )


def _ready(cluster: LocalCluster, namespace: str) -> set[str]:
    items = (get(cluster, namespace, "modeldeployments") or {}).get("items", [])
    return {
        md["metadata"]["name"]
        for md in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in md.get("status", {}).get("conditions", [])
        )
        and md["status"].get("observedGeneration") == md["metadata"]["generation"]
    }


def _when(entry: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))


def _micro(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _writes_by_identity(
    cluster: LocalCluster, namespace: str
) -> dict[str, list[datetime.datetime]]:
    """When each operator process wrote to the test namespace (receipt times, sorted)."""
    found: dict[str, list[datetime.datetime]] = {}
    for entry in operator_writes(cluster, namespace):
        if not 200 <= entry.get("responseStatus", {}).get("code", 0) < 300:
            continue  # refused: nothing was written
        match = USER_AGENT.match(entry.get("userAgent", ""))
        assert match, f"a write from an unnamed process: {entry.get('userAgent')}"
        found.setdefault(match.group(1), []).append(_when(entry))
    return {identity: sorted(times) for identity, times in found.items()}


def _lease_writes(cluster: LocalCluster, lease: str) -> dict[str, int]:
    """Successful writes to the Lease, by process."""
    counts: dict[str, int] = {}
    for entry in operator_writes(cluster, OPERATOR_NAMESPACE):
        ref = entry.get("objectRef", {})
        if ref.get("resource") != "leases" or ref.get("name") not in (lease, None):
            continue
        if 200 <= entry.get("responseStatus", {}).get("code", 0) < 300:
            match = USER_AGENT.match(entry.get("userAgent", ""))
            assert match
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def _elect(replicas: Replicas) -> tuple[Replica, Replica]:
    """Two replicas start; exactly one leads (the Lease and both gauges agree, and keep
    agreeing over a few renewals). Returns (leader, standby)."""
    first = replicas.start("operator-ha-1")
    second = replicas.start("operator-ha-2")
    by_identity = {first.identity: first, second.identity: second}
    holder = wait_for("a Lease holder", lambda: replicas.holder().get("holderIdentity"))
    assert holder in by_identity
    leader = by_identity[holder]
    standby = second if leader is first else first
    wait_for("the leader's gauge", lambda: leader.leader_gauge() == 1, timeout=10)
    assert standby.leader_gauge() == 0
    time.sleep(3)  # a few renewals and standby reads: still one leader
    assert replicas.holder()["holderIdentity"] == leader.identity
    assert standby.leader_gauge() == 0
    return leader, standby


def _assert_one_child_each(cluster: LocalCluster, ns: str, names: list[str]) -> None:
    deployments = get(cluster, ns, "deployments")["items"]
    services = get(cluster, ns, "services")["items"]
    replicasets = get(cluster, ns, "replicasets")["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(names)
    assert sorted(s["metadata"]["name"] for s in services) == sorted(names)
    owners = sorted(rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets)
    assert owners == sorted(names), "a Deployment was rolled twice"


def _sigkill_the_leader(replicas: Replicas, leader: Replica, standby: Replica) -> list[str]:
    """100 ModelDeployments: half before the leader is SIGKILLed mid-way through them, half
    while nobody leads. The standby takes over within 15 s and makes them all Ready."""
    cluster, ns = replicas.cluster, replicas.namespace
    names = [f"m{i:03d}" for i in range(100)]
    _apply(cluster, ns, names[:50])

    def leader_writing() -> int:
        return len(_writes_by_identity(cluster, ns).get(leader.identity, []))

    wait_for("the leader to start writing", lambda: leader_writing() >= 20, timeout=30)
    assert standby.identity not in _writes_by_identity(cluster, ns), "a standby wrote"
    assert standby.identity not in _lease_writes(cluster, replicas.lease), "a standby wrote"
    killed_at = time.monotonic()
    killed_wall = datetime.datetime.now(datetime.UTC)
    replicas.signal(leader, signal.SIGKILL)
    _apply(cluster, ns, names[50:])

    wait_for(
        "the standby to take the Lease",
        lambda: replicas.holder().get("holderIdentity") == standby.identity,
        timeout=20,
    )
    took_over = time.monotonic() - killed_at
    replicas.reap(leader)
    assert took_over < 15, f"takeover took {took_over:.1f}s"
    lease = replicas.holder()
    assert lease["leaseTransitions"] >= 1
    wait_for("the new leader's gauge", lambda: standby.leader_gauge() == 1, timeout=5)

    wait_for("all 100 Ready", lambda: _ready(cluster, ns) >= set(names), timeout=90)
    _assert_one_child_each(cluster, ns, names)

    # One writer at a time: the killed leader's last write (in flight, perhaps) came before it
    # died, and before the new leader's first, which came after it took the Lease.
    writes = _writes_by_identity(cluster, ns)
    assert set(writes) == {leader.identity, standby.identity}, writes.keys()
    # (Half a second for requests the apiserver received while the signal was on its way.)
    assert writes[leader.identity][-1] <= killed_wall + datetime.timedelta(seconds=0.5)
    assert writes[standby.identity][0] >= _micro(lease["acquireTime"])
    assert writes[leader.identity][-1] < writes[standby.identity][0]
    print(f"SIGKILL takeover: {took_over:.1f}s; writes: {[len(w) for w in writes.values()]}")
    return names


def _sigterm_the_leader(replicas: Replicas, leader: Replica, names: list[str]) -> None:
    """A third replica stands by; on SIGTERM the leader releases the Lease and the third takes
    it within 2 s, then alone acts on new ModelDeployments."""
    cluster, ns = replicas.cluster, replicas.namespace
    third = replicas.start("operator-ha-3")
    time.sleep(2)  # its caches fill; it reads the Lease every second
    assert third.leader_gauge() == 0
    assert replicas.holder()["holderIdentity"] == leader.identity
    termed_at = time.monotonic()
    replicas.signal(leader, signal.SIGTERM)
    wait_for(
        "the third replica to take the Lease",
        lambda: replicas.holder().get("holderIdentity") == third.identity,
        timeout=15,
    )
    handed_over = time.monotonic() - termed_at
    assert handed_over < 2, f"handover on SIGTERM took {handed_over:.1f}s"
    replicas.reap(leader)  # it has exited, or exits now
    print(f"SIGTERM handover: {handed_over:.2f}s")

    before = _writes_by_identity(cluster, ns)
    more = [f"n{i:03d}" for i in range(10)]
    _apply(cluster, ns, more)
    wait_for("the new ones Ready", lambda: _ready(cluster, ns) >= set(names + more), timeout=60)
    _assert_one_child_each(cluster, ns, names + more)
    writes = _writes_by_identity(cluster, ns)
    assert writes[leader.identity] == before[leader.identity], "wrote after it handed over"
    assert writes[third.identity][0] >= _micro(replicas.holder()["acquireTime"])
    assert writes[leader.identity][-1] < writes[third.identity][0]


def test_one_leader_writes_and_a_standby_takes_over(replicas: Replicas) -> None:
    leader, standby = _elect(replicas)
    names = _sigkill_the_leader(replicas, leader, standby)
    _sigterm_the_leader(replicas, standby, names)
