"""The generated CRDs install on a real apiserver, and kubectl understands them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modelship_localcluster.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_crds_apply_and_become_established(cluster: LocalCluster) -> None:
    crds = str(ROOT / "crds")
    cluster.kubectl("apply", "--server-side", "-f", crds)
    result = cluster.kubectl("wait", "--for", "condition=established", "--timeout=60s", "-f", crds)
    assert result.stdout.count("condition met") == len(list((ROOT / "crds").glob("*.yaml")))


def test_explain_shows_documented_fields(crds_installed: LocalCluster) -> None:
    out = crds_installed.kubectl("explain", "modeldeployment.spec").stdout
    for field in (
        "storageUri",
        "replicas",
        "gpu",
        "autoscaling",
        "batching",
        "server",
        "nodeSelector",
        "tolerations",
        "affinity",
    ):
        assert f"{field}\t" in out or f"{field} " in out, f"{field} missing from explain"
    assert "Where the SavedModel base path" in out
    gpu = crds_installed.kubectl("explain", "modeldeployment.spec.gpu.count").stdout
    assert "nvidia.com/gpu" in gpu
    tj = crds_installed.kubectl("explain", "trainingjob.spec.runPolicy").stdout
    for field in (
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "cleanPodPolicy",
        "suspend",
    ):
        assert field in tj


def test_short_names_and_category(crds_installed: LocalCluster) -> None:
    resources = crds_installed.kubectl("api-resources", "--api-group=modelship.dev").stdout
    assert "mdep" in resources
    assert "tjob" in resources
    # Nothing built in answers to our short names.
    builtin = crds_installed.kubectl("api-resources", "--api-group=").stdout.split()
    assert "mdep" not in builtin
    assert "tjob" not in builtin


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_applies_and_reapplies_without_change(
    crds_installed: LocalCluster, example: Path
) -> None:
    kubectl = crds_installed.kubectl
    kubectl("apply", "--server-side", "-f", str(example))

    def user_side() -> tuple[object, ...]:
        # What an apply can change: spec, generation, and kubectl's field ownership. (The
        # operator may be writing status meanwhile; that is not the apply's doing.)
        obj = yaml.safe_load(
            kubectl("get", "-f", str(example), "-o", "yaml", "--show-managed-fields").stdout
        )
        owned = [m for m in obj["metadata"]["managedFields"] if m["manager"] == "kubectl"]
        return obj["metadata"]["generation"], obj["spec"], owned

    before = user_side()
    again = kubectl("apply", "--server-side", "-f", str(example))
    assert again.returncode == 0
    assert user_side() == before
    # The server's dry run of the same manifest leaves the spec exactly as it is.
    dry = yaml.safe_load(
        kubectl(
            "apply", "--server-side", "--dry-run=server", "-f", str(example), "-o", "yaml"
        ).stdout
    )
    assert dry["spec"] == before[1]
    assert dry["metadata"]["generation"] == before[0]


def test_get_modelship_lists_both_kinds_with_columns(crds_installed: LocalCluster) -> None:
    for example in EXAMPLES:
        crds_installed.kubectl("apply", "--server-side", "-f", str(example))
    out = crds_installed.kubectl("get", "modelship").stdout
    assert "modeldeployment.modelship.dev/flowers" in out
    assert "trainingjob.modelship.dev/mnist-single" in out
    header = crds_installed.kubectl("get", "mdep").stdout.splitlines()[0].split()
    assert header[:4] == ["NAME", "READY", "REPLICAS", "MODEL"]
    assert "URL" in header
    assert "AGE" in header


def test_scale_subresource_is_served(crds_installed: LocalCluster) -> None:
    crds_installed.kubectl(
        "apply", "--server-side", "-f", str(ROOT / "examples/modeldeployment-cpu.yaml")
    )
    crds_installed.kubectl("scale", "mdep/flowers", "--replicas=3")
    replicas = crds_installed.kubectl(
        "get", "mdep/flowers", "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "3"
    crds_installed.kubectl("scale", "mdep/flowers", "--replicas=1")
