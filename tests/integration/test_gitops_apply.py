"""A GitOps tool applies the same manifests again and again: applying examples/ a second time with
`kubectl apply --server-side` must write nothing, and the operator must never take over a field
of a spec (it writes status only). On the real control plane with the operator running, with the
Secrets the examples name."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kube_helpers import new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = "modeldeployments,trainingjobs"


def apply_examples(cluster: LocalCluster, ns: str) -> dict[str, dict[str, Any]]:
    """The objects as the apply returned them, by kind/name."""
    out = cluster.kubectl(
        "apply",
        "--server-side",
        "--show-managed-fields",
        "-n",
        ns,
        "-o",
        "json",
        "-f",
        str(EXAMPLES),
    ).stdout
    # One document per file when the output is JSON.
    decoder = json.JSONDecoder()
    objects: dict[str, dict[str, Any]] = {}
    rest = out.strip()
    while rest:
        doc, end = decoder.raw_decode(rest)
        rest = rest[end:].strip()
        for obj in doc.get("items", [doc]):
            objects[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return objects


def listed(cluster: LocalCluster, ns: str) -> dict[str, dict[str, Any]]:
    items = json.loads(
        cluster.kubectl("get", KINDS, "--show-managed-fields", "-n", ns, "-o", "json").stdout
    )["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in items}


def main_fields(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Managed-fields entries of the object itself (not of its /status)."""
    return [m for m in obj["metadata"]["managedFields"] if not m.get("subresource")]


def test_applying_examples_twice_writes_nothing(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "gitops-apply")
    try:
        operator.model_store_secret(ns)
        operator.kubectl(
            "create",
            "secret",
            "generic",
            "s3-credentials",
            "-n",
            ns,
            "--from-literal=AWS_ACCESS_KEY_ID=example",
            "--from-literal=AWS_SECRET_ACCESS_KEY=example",
        )
        first = apply_examples(operator, ns)
        expected = set(first)
        assert len(first) == len(list(EXAMPLES.glob("*.yaml"))), sorted(first)

        # The operator has read each object and written its status.
        def observed() -> dict[str, dict[str, Any]] | None:
            now = listed(operator, ns)
            done = all(
                (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
                for o in now.values()
            )
            return now if done and set(now) == expected else None

        wait_for("every example observed", observed, timeout=60)
        # A second apply races only with the operator's status writes: settle first.
        time.sleep(3)
        before = listed(operator, ns)
        second = apply_examples(operator, ns)
        after = listed(operator, ns)
    finally:
        operator.kubectl("delete", "namespace", ns, "--wait=false", check=False)

    assert set(second) == set(before)
    at_rest: list[str] = []
    for key, obj in second.items():
        old, new = before[key], after[key]
        # Nothing that the apply owns moved: no new generation, the same managed fields.
        assert obj["metadata"]["generation"] == old["metadata"]["generation"], key
        assert new["spec"] == old["spec"], key
        assert main_fields(obj) == main_fields(old), key
        # No write at all: the resourceVersion moved only if the operator wrote a new status in
        # between (training progress), and then nothing but status differs.
        if new.get("status") == old.get("status"):
            at_rest.append(key)
            assert obj["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"], key
        else:
            assert {k: v for k, v in new.items() if k not in ("status", "metadata")} == {
                k: v for k, v in old.items() if k not in ("status", "metadata")
            }, key
        # The operator writes status only: the apply is the one manager outside /status.
        managers = [(m["manager"], m["operation"]) for m in main_fields(new)]
        assert managers == [("kubectl", "Apply")], (key, managers)
    # The ModelDeployments at least are at rest by now.
    assert len(at_rest) >= 4, (at_rest, sorted(second))
