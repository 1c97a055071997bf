"""The chart on the real control plane with real helm: `helm upgrade` upgrades the CRDs and
`helm uninstall` keeps them (and the objects in them); a namespaced install grants writes only in
the watched namespaces."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import POD_SECURITY_LABELS, model_deployment, new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "modelship"
CRD_NAMES = ("modeldeployments.modelship.dev", "trainingjobs.modelship.dev")
MD_CRD_TEMPLATE = "templates/crds/modeldeployments.modelship.dev.yaml"


def _helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(cluster.bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _crd(cluster: LocalCluster, name: str) -> dict[str, Any]:
    crd: dict[str, Any] = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
    return crd


def _spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def _older_chart(tmp_path: Path, field: str) -> Path:
    """The chart as a previous release would have shipped it: the ModelDeployment CRD without
    `field` and with another description."""
    old = tmp_path / "modelship-old"
    shutil.copytree(CHART, old)
    template = old / MD_CRD_TEMPLATE
    head, _, body = template.read_text().partition("{{- if .Values.crds.install }}\n")
    body, _, _ = body.rpartition("{{- end }}")
    labels = '    {{- include "modelship.labels" . | nindent 4 }}\n'
    crd = yaml.safe_load(body.replace(labels, ""))
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    del schema["properties"]["spec"]["properties"][field]
    schema["description"] = "An older ModelDeployment."
    text = yaml.safe_dump(crd).replace("  labels:\n", "  labels:\n" + labels, 1)
    template.write_text(head + "{{- if .Values.crds.install }}\n" + text + "{{- end }}\n")
    return old


@pytest.fixture
def adopted_crds(crds_installed: LocalCluster) -> Iterator[tuple[LocalCluster, str, str]]:
    """A release namespace and name whose release may take over the CRDs that kubectl applied
    (the step docs/operations.md gives for installs from before the CRDs were templates)."""
    cluster = crds_installed
    namespace = new_namespace(cluster, "chart-upgrade")
    release = f"ms-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("label", "--overwrite", "crd", *CRD_NAMES, "app.kubernetes.io/managed-by=Helm")
    cluster.kubectl(
        "annotate",
        "--overwrite",
        "crd",
        *CRD_NAMES,
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
    )
    yield cluster, namespace, release
    cluster.kubectl(
        "annotate",
        "crd",
        *CRD_NAMES,
        "meta.helm.sh/release-name-",
        "meta.helm.sh/release-namespace-",
    )
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _dry_run_with(cluster: LocalCluster, namespace: str, field: str, value: Any) -> str:
    """kubectl's answer to a server-side dry run of a ModelDeployment setting spec.`field`."""
    body = model_deployment("probe", **{field: value})
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        input_text=yaml.safe_dump(body),
        check=False,
    )
    return f"exit {result.returncode}: {result.stdout}{result.stderr}"


def test_upgrade_installs_the_new_crd_schema_and_uninstall_keeps_it(
    adopted_crds: tuple[LocalCluster, str, str], tmp_path: Path
) -> None:
    cluster, namespace, release = adopted_crds
    current = _crd(cluster, CRD_NAMES[0])
    # A field the previous release did not have: optional, and named by no CEL rule, printer
    # column or subresource, so the CRD without it is still valid.
    field, value = "modelName", "probe-model"
    assert json.dumps(current).count(field) == 1
    common = (f"--namespace={namespace}", "--set", "replicas=0")

    _helm(cluster, "install", release, str(_older_chart(tmp_path, field)), *common)
    old = _crd(cluster, CRD_NAMES[0])
    assert field not in _spec_schema(old)["properties"]
    assert old["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    wait_for(
        "the old schema to refuse the field",
        lambda: (
            _dry_run_with(cluster, namespace, field, value).startswith("exit 1")
            and field in _dry_run_with(cluster, namespace, field, value)
        ),
    )
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-",
        input_text=yaml.safe_dump(model_deployment("survivor")),
    )  # fmt: skip

    _helm(cluster, "upgrade", release, str(CHART), *common)
    new = _crd(cluster, CRD_NAMES[0])
    assert _spec_schema(new) == _spec_schema(current)
    (version,) = new["spec"]["versions"]
    assert version["schema"]["openAPIV3Schema"]["description"] != "An older ModelDeployment."
    wait_for(
        "the new schema to take the field",
        lambda: _dry_run_with(cluster, namespace, field, value).startswith("exit 0"),
    )

    _helm(cluster, "uninstall", release, f"--namespace={namespace}")
    for name in CRD_NAMES:
        assert _crd(cluster, name)["metadata"]["name"] == name
    survivor = cluster.kubectl("get", "modeldeployment", "survivor", "-n", namespace, "-o", "name")
    assert survivor.stdout.strip() == "modeldeployment.modelship.dev/survivor"


def test_namespaced_install_writes_only_in_watched_namespaces(
    crds_installed: LocalCluster,
) -> None:
    cluster = crds_installed
    home = new_namespace(cluster, "chart-home")
    watched = new_namespace(cluster, "chart-watched")
    unwatched = new_namespace(cluster, "chart-unwatched")
    release = f"ms-{uuid.uuid4().hex[:6]}"
    account = f"ns-operator-{uuid.uuid4().hex[:6]}"
    user = f"system:serviceaccount:{home}:{account}"
    _helm(
        cluster,
        "install",
        release,
        str(CHART),
        f"--namespace={home}",
        "--set",
        f"replicas=0,crds.install=false,serviceAccount.name={account},"
        f"watchNamespaces={{{watched}}}",
    )
    try:

        def can_i(verb: str, resource: str, *where: str) -> str:
            return cluster.kubectl(
                "auth", "can-i", verb, resource, *where, f"--as={user}", check=False
            ).stdout.strip()

        md_status = "modeldeployments.modelship.dev"
        wait_for(
            "the Role in the watched namespace",
            lambda: can_i("create", "deployments.apps", "-n", watched) == "yes",
        )
        assert can_i("patch", "deployments.apps", "-n", watched) == "yes"
        assert can_i("patch", md_status, "--subresource=status", "-n", watched) == "yes"
        assert can_i("create", "deployments.apps", "-n", unwatched) == "no"
        assert can_i("list", "deployments.apps", "--all-namespaces") == "no"
        assert can_i("patch", md_status, "--subresource=status", "-n", unwatched) == "no"
        assert can_i("get", "secrets", "-n", watched) == "no"
        # The leader-election Lease lives in the release namespace, and only there.
        assert can_i("update", "leases.coordination.k8s.io", "-n", home) == "yes"
        assert can_i("update", "leases.coordination.k8s.io", "-n", watched) == "no"
        # What stays cluster-wide is reading CRDs and namespaces (kopf's discovery).
        assert can_i("watch", "customresourcedefinitions.apiextensions.k8s.io") == "yes"
        assert can_i("watch", "namespaces") == "yes"

        bindings = json.loads(cluster.kubectl("get", "clusterrolebindings", "-o", "json").stdout)
        ours = [
            b
            for b in bindings["items"]
            if any(
                s.get("name") == account and s.get("namespace") == home
                for s in b.get("subjects") or []
            )
        ]
        assert len(ours) == 1, [b["metadata"]["name"] for b in ours]
        role = json.loads(
            cluster.kubectl("get", "clusterrole", ours[0]["roleRef"]["name"], "-o", "json").stdout
        )
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
            assert set(rule["resources"]) <= {"namespaces", "customresourcedefinitions"}, rule
    finally:
        _helm(cluster, "uninstall", release, f"--namespace={home}")
        for namespace in (home, watched, unwatched):
            cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_operator_pods_pass_restricted_pod_security(crds_installed: LocalCluster) -> None:
    """A pod from the chart's Deployment template, created (server-side dry run) in a namespace
    enforcing the restricted Pod Security level: the real PodSecurity admission takes it."""
    cluster = crds_installed
    namespace = new_namespace(cluster, "chart-podsecurity")
    cluster.kubectl(
        "label",
        "--overwrite",
        "namespace",
        namespace,
        *(f"{k}={v}" for k, v in POD_SECURITY_LABELS.items()),
    )
    cluster.kubectl("create", "serviceaccount", "modelship-operator", "-n", namespace)
    try:
        rendered = _helm(
            cluster,
            "template",
            "ms",
            str(CHART),
            f"--namespace={namespace}",
            "--kube-version=1.36.0",
            "--set",
            "prometheus.url=https://prom:9090,prometheus.tlsSecret.name=prom-tls",
        )
        (deployment,) = [
            d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment"
        ]
        template = deployment["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "operator-probe", "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
        result = cluster.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-",
            input_text=yaml.safe_dump(pod), check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "would violate" not in result.stderr, result.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
