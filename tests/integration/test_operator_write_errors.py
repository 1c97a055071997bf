"""A write the apiserver forbids is reported in seconds, and retried until the cluster allows it."""

from __future__ import annotations

from typing import Any

from kube_helpers import apply, condition, get, model_deployment, new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster


def _quota(count: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-deployments"},
        "spec": {"hard": {"count/deployments.apps": str(count)}},
    }


def test_a_quota_is_reported_as_forbidden_then_retried(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "quota")
    apply(operator, ns, _quota(0))
    # replicas 0: once allowed, Ready needs no pod to start.
    apply(operator, ns, model_deployment("m", replicas=0))

    def forbidden() -> dict[str, Any] | None:
        stalled = condition(get(operator, ns, "modeldeployment", "m"), "Stalled")
        return stalled if stalled.get("reason") == "Forbidden" else None

    stalled = wait_for("a Forbidden condition", forbidden, timeout=30)
    assert stalled["status"] == "True"
    assert "exceeded quota" in stalled["message"], stalled
    assert "Deployment m" in stalled["message"], stalled
    assert get(operator, ns, "deployment", "m") is None

    operator.kubectl("delete", "resourcequota", "no-deployments", "-n", ns)

    def ready() -> bool:
        md = get(operator, ns, "modeldeployment", "m")
        return condition(md, "Ready").get("status") == "True"

    # The retry's backoff is capped at a minute; the quota was only there for seconds.
    wait_for("Ready once the quota is gone", ready, timeout=90)
    assert condition(get(operator, ns, "modeldeployment", "m"), "Stalled")["status"] == "False"
