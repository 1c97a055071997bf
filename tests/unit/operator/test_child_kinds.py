"""A child kind is declared once (resources/kinds.py) and every layer follows the table."""

from __future__ import annotations

from pathlib import Path

import kopf
import yaml
from modelship_operator import handlers
from modelship_operator.api.render import CHILD_RULES_TEMPLATE, render_all
from modelship_operator.controller.runtime import CHILD_INDEXES
from modelship_operator.kube import object_path
from modelship_operator.resources.children import CHILD_KINDS
from modelship_operator.resources.kinds import CHILD_VERBS, CHILDREN

ROOT = Path(__file__).resolve().parents[3]


def _rules() -> list[dict[str, object]]:
    text = render_all()[CHILD_RULES_TEMPLATE]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("{{"))
    rules: list[dict[str, object]] = yaml.safe_load(body)
    return rules


def test_every_child_has_an_api_path() -> None:
    assert object_path("Deployment", "ns", "m") == "/apis/apps/v1/namespaces/ns/deployments/m"
    assert object_path("Service", "ns") == "/api/v1/namespaces/ns/services"
    for child in CHILDREN:
        assert object_path(child.kind, "ns", "m").endswith(f"/{child.plural}/m")


def test_every_child_and_our_pods_are_watched_into_a_cache_by_owner() -> None:
    everywhere = {c.name: c for c, _ in handlers.collections([])}
    for child in CHILDREN:
        watched = everywhere[child.index]
        assert watched.path == f"{child.api_prefix}/{child.plural}"
        assert (watched.api_version, watched.kind) == (child.api_version, child.kind)
        assert watched.label_selector == "app.kubernetes.io/managed-by=modelship"
    assert everywhere["pods"].path == "/api/v1/pods"
    assert set(everywhere) == {child.index for child in CHILDREN} | {"pods"}
    # With watched namespaces, one watch per namespace: a Role there allows nothing wider.
    scoped = handlers.collections(["a", "b"])
    assert len(scoped) == 2 * len(everywhere)
    assert {c.path for c, _ in scoped if c.name == "deployments"} == {
        "/apis/apps/v1/namespaces/a/deployments",
        "/apis/apps/v1/namespaces/b/deployments",
    }
    # kopf watches only our own kinds.
    registry = kopf.get_default_registry()
    watched_by_kopf = {
        h.selector.plural or h.selector.any_name
        for h in registry._watching.get_all_handlers()
        if h.selector
    }
    assert watched_by_kopf == {"modeldeployments", "trainingjobs"}
    assert {child.kind: child.index for child in CHILDREN} == CHILD_INDEXES
    assert set(CHILD_KINDS) == set(CHILD_INDEXES)


def test_the_charts_rbac_lets_the_operator_own_every_child() -> None:
    granted = {
        (group, resource): set(rule["verbs"])  # type: ignore[call-overload]
        for rule in _rules()
        for group in rule["apiGroups"]  # type: ignore[attr-defined]
        for resource in rule["resources"]  # type: ignore[attr-defined]
    }
    for child in CHILDREN:
        assert granted[(child.group, child.plural)] == set(CHILD_VERBS), child.kind
    rbac = (ROOT / "charts" / "modelship" / "templates" / "rbac.yaml").read_text()
    assert 'include "modelship.childRules"' in rbac
