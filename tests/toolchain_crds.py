"""CRDs of other projects (KEDA, prometheus-operator) that hack/toolchain/build.sh copies out of
their Go modules into the cache, at the versions pinned in hack/toolchain/versions.env."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_localcluster.cache import cache_root

VERSIONS = Path(__file__).resolve().parent.parent / "hack" / "toolchain" / "versions.env"


def pinned(variable: str) -> str:
    for line in VERSIONS.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == variable:
            return value.strip()
    raise KeyError(f"{variable} is not pinned in {VERSIONS}")


def cached_crd(name: str, variable: str, file: str) -> Path:
    """The cached CRD file; skips the test, saying how to get it, when it is absent."""
    path = cache_root() / "crds" / f"{name}-{pinned(variable)}" / file
    if not path.is_file():
        pytest.skip(f"{path} is absent: `make toolchain` (hack/toolchain/build.sh) fetches it")
    return path


def keda_scaledobject_crd() -> Path:
    return cached_crd("keda", "KEDA_VERSION", "keda.sh_scaledobjects.yaml")


def prometheus_operator_crd(plural: str) -> Path:
    """`plural` is podmonitors, servicemonitors or prometheusrules."""
    return cached_crd(
        "prometheus-operator", "PROMETHEUS_OPERATOR_VERSION", f"monitoring.coreos.com_{plural}.yaml"
    )
