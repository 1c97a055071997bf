"""Keeping the nodes alive as a kubelet does: a Ready status with fresh heartbeats, and a Lease
in kube-node-lease renewed every 10 s, so the node-lifecycle controller never marks them
NotReady or evicts their pods."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .kube import MERGE_PATCH, STRATEGIC_PATCH, ApiError, Kube
from .status import HOST_IP

log = logging.getLogger("processpods")

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
RENEW_SECONDS = 10.0
PRESSURE = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
}


def micro_time(at: datetime.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_status_patch(
    name: str, previous: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> dict[str, Any]:
    """Conditions (Ready, no pressure) and addresses; capacity and allocatable are left as the
    node's creator set them."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {c.get("type"): c for c in previous}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": since or stamp,
        }

    conditions = [condition(k, "False", r, m) for k, (r, m) in PRESSURE.items()]
    conditions.append(condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    return {
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "operatingSystem": "linux",
                "architecture": "amd64",
                "kubeletVersion": "v0.0.0-processpods",
                "containerRuntimeVersion": "process://",
            },
        }
    }


def lease_object(node: Mapping[str, Any], now: datetime.datetime) -> dict[str, Any]:
    name = node["metadata"]["name"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            # Like the kubelet's: gone with its node.
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        },
    }


class NodeKeeper(threading.Thread):
    def __init__(self, kube: Kube, nodes: Sequence[str], interval: float = RENEW_SECONDS) -> None:
        super().__init__(name="node heartbeat", daemon=True)
        self._kube = kube
        self._nodes = list(nodes)
        self._interval = interval
        self._halt = threading.Event()
        self._failing: set[str] = set()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            self.beat()
            self._halt.wait(self._interval)

    def beat(self) -> None:
        for name in self._nodes:
            try:
                self._beat(name)
            except (ApiError, KeyError) as err:
                if name not in self._failing:
                    log.warning("node %s: heartbeat failed: %s", name, err)
                self._failing.add(name)
            else:
                if name in self._failing:
                    log.info("node %s: heartbeat back", name)
                self._failing.discard(name)

    def _beat(self, name: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        node = self._kube.get(f"/api/v1/nodes/{name}")
        patch = node_status_patch(name, node.get("status", {}).get("conditions") or [], now)
        self._kube.request(
            "PATCH", f"/api/v1/nodes/{name}/status", patch, content_type=STRATEGIC_PATCH
        )
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{name}"
        renew = {
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_time(now),
            }
        }
        try:
            self._kube.request("PATCH", path, renew, content_type=MERGE_PATCH)
        except ApiError as err:
            if err.status != 404:
                raise
            self._kube.request(
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                lease_object(node, now),
            )
