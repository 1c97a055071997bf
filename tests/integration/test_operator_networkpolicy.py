"""spec.networkPolicy on the real control plane: the apiserver admits the NetworkPolicy the
operator builds, the pods still become Ready, and removing the field deletes the policy."""

from __future__ import annotations

from typing import Any

import yaml
from kube_helpers import (
    apply,
    condition,
    get,
    model_deployment,
    new_namespace,
    wait_for,
    wait_ready,
)
from modelship_localcluster.cluster import LocalCluster

TEAM_A = {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}
FRONTEND = {"matchLabels": {"app": "frontend"}}


def test_network_policy_is_admitted_and_follows_the_spec(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-netpol")
    peers = [
        {"namespaceSelector": TEAM_A},
        {"podSelector": FRONTEND},
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]
            },
            "podSelector": FRONTEND,
        },
    ]
    apply(operator, ns, model_deployment("np", networkPolicy={"allowFrom": peers}))
    wait_ready(operator, ns, "np")
    policy = wait_for("the NetworkPolicy", lambda: get(operator, ns, "networkpolicy", "np"))
    # What the apiserver stored (after its own validation and defaulting) is what we asked.
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"modelship.dev/modeldeployment": "np"}}
    assert spec["policyTypes"] == ["Ingress"]
    clients, prometheus = spec["ingress"]
    assert clients["from"] == peers
    assert sorted(p["port"] for p in clients["ports"]) == [8500, 8501]
    assert prometheus["from"] == [
        {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
        {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "modelship-operator"}},
        },
    ]
    assert prometheus["ports"] == [{"protocol": "TCP", "port": 8501}]
    owner = policy["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("ModelDeployment", "np")
    # The policy selects the model-server pods.
    pods = get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=np")["items"]
    assert pods

    # Only Prometheus now: a single rule.
    apply(operator, ns, model_deployment("np", networkPolicy={}))

    def one_rule() -> Any:
        current = get(operator, ns, "networkpolicy", "np")
        return current if current and len(current["spec"]["ingress"]) == 1 else None

    wait_for("the Prometheus-only policy", one_rule)

    # Dropping the field deletes the policy.
    apply(operator, ns, model_deployment("np"))
    wait_for("the NetworkPolicy to go", lambda: get(operator, ns, "networkpolicy", "np") is None)
    assert "deleted NetworkPolicy np" in operator.kubectl("get", "events", "-n", ns).stdout


def test_a_peer_without_selectors_is_refused_at_admission(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-netpol-bad")
    bad = model_deployment("np", networkPolicy={"allowFrom": [{}]})
    out = operator.kubectl(
        "apply", "--server-side", "-n", ns, "-f", "-", input_text=yaml.safe_dump(bad), check=False
    )
    assert out.returncode != 0
    assert "spec.networkPolicy.allowFrom[0]" in out.stderr
    assert "set namespaceSelector, podSelector or both" in out.stderr


def test_a_selector_the_networkpolicy_api_refuses_stalls_with_its_message(
    operator: LocalCluster,
) -> None:
    ns = new_namespace(operator, "md-netpol-stall")
    # Passes the CRD (Kubernetes' LabelSelector schema) but not NetworkPolicy validation: In
    # needs values.
    selector = {"matchExpressions": [{"key": "team", "operator": "In"}]}
    apply(
        operator,
        ns,
        model_deployment("np", networkPolicy={"allowFrom": [{"podSelector": selector}]}),
    )

    def stalled() -> dict[str, str] | None:
        cond = condition(get(operator, ns, "modeldeployment", "np"), "Stalled")
        return cond if cond.get("status") == "True" else None

    cond = wait_for("Stalled=True", stalled)
    assert "NetworkPolicy" in cond["message"], cond
