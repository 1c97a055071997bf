"""A child kind is declared once (resources/kinds.py) and every layer follows the table."""

from __future__ import annotations

from pathlib import Path

import kopf
import yaml
from modelship_operator import handlers  # noqa: F401 - registers the kopf handlers
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


def test_every_child_is_watched_and_indexed_by_owner() -> None:
    registry = kopf.get_default_registry()
    indexed = {h.id: h.selector for h in registry._indexing.get_all_handlers()}
    watched = {h.selector.plural for h in registry._watching.get_all_handlers() if h.selector}
    for child in CHILDREN:
        selector = indexed[child.index]
        assert selector is not None
        assert (selector.group, selector.version, selector.plural) == (
            child.group,
            child.version,
            child.plural,
        )
        assert child.plural in watched
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
