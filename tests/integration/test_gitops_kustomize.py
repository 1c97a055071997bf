"""config/default, the kustomize base generated from the chart (hack/gen_kustomize.py): it holds
what the chart renders with its default values, kubectl's own kustomize builds it, and the real
apiserver accepts it (`kubectl apply -k --dry-run=server`), as it is and under an overlay that
moves it to another namespace."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kube_helpers import new_namespace
from modelship_localcluster.cluster import LocalCluster, default_bin_dir
from toolchain_crds import pinned

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "config" / "default"
CHART = ROOT / "charts" / "modelship"
NAMESPACE = "modelship-system"
# Cluster-scoped kinds newer than kustomize's built-in OpenAPI: it cannot tell they are cluster-
# scoped and sets the namespace, which the apiserver drops (`apply -k` below accepts them).
NAMESPACED_BY_KUSTOMIZE = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def run(*argv: str) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def test_base_is_what_the_chart_renders() -> None:
    bindir = default_bin_dir()
    built = objects(run(str(bindir / "kubectl"), "kustomize", str(BASE)))
    chart = objects(
        run(
            str(bindir / "helm"),
            *("template", "modelship", str(CHART), f"--namespace={NAMESPACE}"),
            f"--kube-version={pinned('KUBERNETES_VERSION').lstrip('v')}",
        )
    )
    assert set(built) == set(chart) | {("Namespace", NAMESPACE)}
    kinds = {kind for kind, _ in built}
    assert {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    } <= kinds
    for key, rendered in chart.items():
        ours = built[key]
        for field in ("spec", "rules", "roleRef", "subjects"):
            assert ours.get(field) == rendered.get(field), (key, field)
        if key[0] in NAMESPACED_BY_KUSTOMIZE:
            assert rendered["metadata"].get("namespace") is None, key
            continue
        assert ours["metadata"].get("namespace") == rendered["metadata"].get("namespace"), key
    # The CRDs are the generated ones in crds/.
    for name in ("modeldeployments.modelship.dev", "trainingjobs.modelship.dev"):
        crd = yaml.safe_load((ROOT / "crds" / f"{name}.yaml").read_text())
        assert built[("CustomResourceDefinition", name)]["spec"] == crd["spec"]
    # The generator agrees with the committed files (what `make lint` checks).
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack" / "gen_kustomize.py"),
            "--check",
        ],
        check=True,
        timeout=120,
    )


def test_apply_k_passes_server_side_dry_run(operator: LocalCluster, tmp_path: Path) -> None:
    out = operator.kubectl("apply", "-k", str(BASE), "--dry-run=server", check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    built = objects(operator.kubectl("kustomize", str(BASE)).stdout)
    assert len(lines) == len(built), out.stdout
    assert all(line.endswith("(server dry run)") for line in lines), out.stdout

    # An overlay that installs it in another namespace: the bindings follow.
    ns = new_namespace(operator, "gitops-kz")
    try:
        shutil.copytree(BASE, tmp_path / "base")
        overlay = tmp_path / "overlay"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "namespace": ns,
                    "resources": ["../base"],
                    "patches": [
                        {
                            "target": {"kind": "Namespace"},
                            "patch": "$patch: delete\napiVersion: v1\nkind: Namespace\n"
                            "metadata:\n  name: any\n",
                        }
                    ],
                }
            )
        )
        moved = objects(operator.kubectl("kustomize", str(overlay)).stdout)
        binding = moved[("ClusterRoleBinding", "modelship-operator")]
        assert binding["subjects"][0]["namespace"] == ns
        assert moved[("Deployment", "modelship-operator")]["metadata"]["namespace"] == ns
        out = operator.kubectl("apply", "-k", str(overlay), "--dry-run=server", check=False)
        assert out.returncode == 0, out.stderr
        assert "deployment.apps/modelship-operator created (server dry run)" in out.stdout
        assert "namespace/" not in out.stdout
    finally:
        operator.kubectl("delete", "namespace", ns, "--wait=false", check=False)
