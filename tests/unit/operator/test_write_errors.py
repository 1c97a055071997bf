"""A child write the apiserver refuses is never silent: each kind of refusal has its condition."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship_operator.controller.plan import Snapshot
from modelship_operator.controller.reconcile import reconcile
from modelship_operator.resources.names import ModelDeploymentRef

BODY = {
    "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {"storageUri": "s3://b/m", "replicas": 2},
}
QUOTA = (
    'deployments.apps "m" is forbidden: exceeded quota: compute, requested: '
    "count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
)
NOT_DECLARED = (
    "failed to create typed patch object (ns/m; apps/v1, Kind=Deployment): "
    ".spec.template.spec.affinity.nodeAfinity: field not declared in schema"
)


def _error(status: int, message: str) -> ApiException:
    err = ApiException(status=status, reason="refused")
    err.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return err


class RefusingApi:
    """Raises `error` for the Deployment apply, records every other write."""

    def __init__(self, error: ApiException) -> None:
        self.error = error
        self.calls: list[tuple[str, Any]] = []

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Deployment":
            raise self.error
        self.calls.append(("apply", obj["kind"]))
        return obj

    def delete(self, obj: dict[str, Any]) -> None:
        self.calls.append(("delete", obj["kind"]))

    def apply_status(self, ref: ModelDeploymentRef, status: dict[str, Any]) -> None:
        self.calls.append(("status", status))

    def event(self, ref: ModelDeploymentRef, type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", (type_, reason, message)))

    def condition(self, kind: str) -> dict[str, Any]:
        (status,) = [c[1] for c in self.calls if c[0] == "status"]
        return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_403_is_reported_as_forbidden_and_retried() -> None:
    api = RefusingApi(_error(403, QUOTA))
    with pytest.raises(ApiException) as raised:
        reconcile(Snapshot(BODY, {}, []), api, now=lambda: "t")
    assert raised.value.status == 403  # the queue retries it with backoff
    stalled = api.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "Forbidden")
    assert QUOTA in stalled["message"]
    assert "Deployment m" in stalled["message"]
    assert api.condition("Ready")["reason"] == "Forbidden"
    assert ("event", ("Warning", "Forbidden", stalled["message"])) in api.calls


def test_a_403_is_tried_again_for_the_same_generation() -> None:
    first = RefusingApi(_error(403, QUOTA))
    with pytest.raises(ApiException):
        reconcile(Snapshot(BODY, {}, []), first, now=lambda: "t")
    (status,) = [c[1] for c in first.calls if c[0] == "status"]
    again = RefusingApi(_error(403, QUOTA))
    with pytest.raises(ApiException):
        reconcile(Snapshot({**BODY, "status": status}, {}, []), again, now=lambda: "t")
    # Unlike an invalid spec, the write is attempted again; the unchanged status is not rewritten.
    assert not [c for c in again.calls if c[0] == "status"]


def test_a_403_deletes_nothing() -> None:
    api = RefusingApi(_error(403, QUOTA))
    with pytest.raises(ApiException):
        reconcile(Snapshot(BODY, {}, []), api, now=lambda: "t")
    assert not [c for c in api.calls if c[0] == "delete"]


def test_a_500_about_an_undeclared_field_is_an_invalid_spec() -> None:
    api = RefusingApi(_error(500, NOT_DECLARED))
    reconcile(Snapshot(BODY, {}, []), api, now=lambda: "t")
    stalled = api.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "field not declared in schema" in stalled["message"]


def test_another_500_propagates_without_a_verdict() -> None:
    api = RefusingApi(_error(500, "etcdserver: request timed out"))
    with pytest.raises(ApiException):
        reconcile(Snapshot(BODY, {}, []), api, now=lambda: "t")
    assert not [c for c in api.calls if c[0] == "status"]
