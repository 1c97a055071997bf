"""The NetworkPolicy of a ModelDeployment with spec.networkPolicy: ingress to its pods only from
the listed peers (REST and gRPC) and, on the plain-HTTP monitoring port (REST, or the health port
with server.tls), from Prometheus and from the operator, which asks the pods their version."""

from __future__ import annotations

from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec, NetworkPeer, NetworkPolicy
from .names import (
    GRPC_PORT,
    REST_PORT,
    ModelDeploymentRef,
    child_metadata,
    monitoring_port,
    selector_labels,
)

# The operator's pods, as the chart (and config/default) label them, in any namespace.
OPERATOR_PEER = {
    "namespaceSelector": {},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "modelship-operator"}},
}


def _port(number: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": number}


def _peer(peer: NetworkPeer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = peer.namespace_selector
    if peer.pod_selector is not None:
        out["podSelector"] = peer.pod_selector
    return out


def build_network_policy(
    ref: ModelDeploymentRef, spec: ModelDeploymentSpec, policy: NetworkPolicy
) -> dict[str, Any]:
    """Ingress only: the pods' egress stays open (the storage-initializer fetches the model).
    An empty allowFrom leaves a single rule, the monitoring port's, so nothing else gets in."""
    rules: list[dict[str, Any]] = []
    if policy.allow_from:
        rules.append(
            {
                "from": [_peer(peer) for peer in policy.allow_from],
                "ports": [_port(REST_PORT), _port(GRPC_PORT)],
            }
        )
    rules.append(
        {
            "from": [_peer(policy.prometheus), OPERATOR_PEER],
            "ports": [_port(monitoring_port(spec))],
        }
    )
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
