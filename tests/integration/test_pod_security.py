"""Pod Security admission on the real apiserver: test namespaces enforce `restricted`, and every
pod spec the operator builds (model-server pods with their storage-initializer, each role of a
TrainingJob, from every example) is admitted there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import new_namespace
from modelship_localcluster.cluster import LocalCluster
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.api.trainingjob import TrainingJobSpec
from modelship_operator.resources.deployment import build_deployment
from modelship_operator.resources.names import ModelDeploymentRef, ObjectRef
from modelship_operator.resources.trainingjob.children import desired_children

ROOT = Path(__file__).resolve().parents[2]


def _examples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _pod_templates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    name = doc["metadata"]["name"]
    if doc["kind"] == "ModelDeployment":
        spec = ModelDeploymentSpec.model_validate(doc["spec"])
        if spec.storage_uri is None:  # from a TrainingJob: the operator resolves it to storage
            spec = spec.model_copy(update={"storage_uri": "s3://models/resolved"})
        ref = ModelDeploymentRef(name, "ns", "00000000-0000-0000-0000-000000000000", 1)
        return [build_deployment(ref, spec)["spec"]["template"]]
    ref = ObjectRef(name, "ns", "00000000-0000-0000-0000-000000000000", 1, "TrainingJob")
    jobs = desired_children(ref, TrainingJobSpec.model_validate(doc["spec"]))
    return [job["spec"]["template"] for job in jobs if job["kind"] == "Job"]


def _dry_run_pod(cluster: LocalCluster, ns: str, name: str, spec: dict[str, Any]) -> Any:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    return cluster.kubectl(
        "create", "--dry-run=server", "-n", ns, "-f", "-", input_text=json.dumps(pod), check=False
    )


def test_the_examples_cover_the_init_container() -> None:
    specs = [t["spec"] for doc in _examples() for t in _pod_templates(doc)]
    assert any(spec.get("initContainers") for spec in specs)


def test_test_namespaces_enforce_restricted(cluster: LocalCluster) -> None:
    ns = new_namespace(cluster, "psa")
    labels = json.loads(cluster.kubectl("get", "namespace", ns, "-o", "json").stdout)["metadata"][
        "labels"
    ]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # A pod restricted refuses is refused, with the reason: the label is enforced.
    plain = {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    for where in (ns, "default"):
        out = _dry_run_pod(cluster, where, "plain", plain)
        assert out.returncode != 0
        assert 'violates PodSecurity "restricted:latest"' in out.stderr, out.stderr


@pytest.mark.parametrize(
    "doc",
    [d for d in _examples() if "file://" not in json.dumps(d)],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_every_pod_the_operator_builds_is_admitted(cluster: LocalCluster, doc: Any) -> None:
    ns = new_namespace(cluster, "psa-pods")
    templates = _pod_templates(doc)
    assert templates
    for i, template in enumerate(templates):
        out = _dry_run_pod(cluster, ns, f"pod-{i}", template["spec"])
        assert out.returncode == 0, out.stderr
        assert "Warning" not in out.stderr, out.stderr  # the warn label: nothing borderline
