"""spec.networkPolicy → the NetworkPolicy child (pure builder and plan)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.plan import Snapshot, plan_children
from modelship_operator.resources.children import desired_children
from modelship_operator.resources.names import ModelDeploymentRef
from pydantic import ValidationError

BODY: dict[str, Any] = {
    "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {"storageUri": "s3://b/m"},
}
REF = ModelDeploymentRef.from_body(BODY)
TEAM_A = {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}
FRONTEND = {"matchLabels": {"app": "frontend"}}


def _spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**BODY["spec"], **fields})


def _policy(network_policy: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = desired_children(REF, _spec(networkPolicy=network_policy))[
        "NetworkPolicy"
    ]
    return policy


def test_no_network_policy_unless_asked() -> None:
    assert "NetworkPolicy" not in desired_children(REF, _spec())


def test_listed_peers_reach_rest_and_grpc_prometheus_only_the_metrics_port() -> None:
    policy = _policy({"allowFrom": [{"namespaceSelector": TEAM_A}, {"podSelector": FRONTEND}]})
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["name"] == "m"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u"
    spec = policy["spec"]
    # The pods of this ModelDeployment only, and ingress only: the fetch's egress stays open.
    assert spec["podSelector"] == {"matchLabels": {"modelship.dev/modeldeployment": "m"}}
    assert spec["policyTypes"] == ["Ingress"]
    clients, prometheus = spec["ingress"]
    assert clients["from"] == [{"namespaceSelector": TEAM_A}, {"podSelector": FRONTEND}]
    assert {p["port"] for p in clients["ports"]} == {8501, 8500}
    # Prometheus scrapes, and the operator asks the version, on the plain-HTTP REST port.
    assert prometheus == {
        "from": [
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            },
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "modelship-operator"}},
            },
        ],
        "ports": [{"protocol": "TCP", "port": 8501}],
    }


def test_with_tls_monitoring_moves_to_the_health_port() -> None:
    spec = _spec(server={"tls": {"secretName": "hp2-tls"}}, networkPolicy={"allowFrom": []})
    policy = desired_children(REF, spec)["NetworkPolicy"]
    (monitoring,) = policy["spec"]["ingress"]
    assert monitoring["ports"] == [{"protocol": "TCP", "port": 8502}]


def test_both_selectors_in_one_peer_mean_those_pods_of_those_namespaces() -> None:
    policy = _policy({"allowFrom": [{"namespaceSelector": TEAM_A, "podSelector": FRONTEND}]})
    assert policy["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": TEAM_A, "podSelector": FRONTEND}
    ]


def test_empty_allow_from_admits_only_prometheus() -> None:
    policy = _policy({})
    (only,) = policy["spec"]["ingress"]
    assert only["ports"] == [{"protocol": "TCP", "port": 8501}]


def test_prometheus_peer_can_be_narrowed() -> None:
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    policy = _policy({"prometheus": {"namespaceSelector": monitoring}})
    assert policy["spec"]["ingress"][-1]["from"][0] == {"namespaceSelector": monitoring}


def test_a_peer_needs_a_selector() -> None:
    with pytest.raises(ValidationError):
        _spec(networkPolicy={"allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})


def test_removing_network_policy_deletes_the_child() -> None:
    with_policy = {**BODY, "spec": {**BODY["spec"], "networkPolicy": {}}}
    spec = ModelDeploymentSpec.model_validate(with_policy["spec"])
    live = {kind: copy.deepcopy(obj) for kind, obj in desired_children(REF, spec).items()}
    assert "NetworkPolicy" in live
    plan = plan_children(Snapshot(BODY, live, []), _spec())
    assert [obj["kind"] for obj, _ in plan.delete] == ["NetworkPolicy"]
    # …and kept (not rewritten) while it is still wanted.
    plan = plan_children(Snapshot(with_policy, live, []), spec)
    assert plan.delete == []
    assert plan.apply == []
