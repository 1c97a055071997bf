"""The NetworkPolicy of a ModelDeployment with spec.networkPolicy: ingress to its pods only from
the listed peers (REST and gRPC) and from Prometheus (the REST port, where /metrics is served)."""

from __future__ import annotations

from typing import Any

from ..api.modeldeployment import NetworkPeer, NetworkPolicy
from .names import GRPC_PORT, REST_PORT, ModelDeploymentRef, child_metadata, selector_labels


def _port(number: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": number}


def _peer(peer: NetworkPeer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = peer.namespace_selector
    if peer.pod_selector is not None:
        out["podSelector"] = peer.pod_selector
    return out


def build_network_policy(ref: ModelDeploymentRef, policy: NetworkPolicy) -> dict[str, Any]:
    """Ingress only: the pods' egress stays open (the storage-initializer fetches the model).
    An empty allowFrom leaves a single rule, Prometheus', so nothing else gets in."""
    rules: list[dict[str, Any]] = []
    if policy.allow_from:
        rules.append(
            {
                "from": [_peer(peer) for peer in policy.allow_from],
                "ports": [_port(REST_PORT), _port(GRPC_PORT)],
            }
        )
    rules.append({"from": [_peer(policy.prometheus)], "ports": [_port(REST_PORT)]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(ref),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(ref)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
