"""The apiserver rejects every manifest in invalid/ with an error naming the offending field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modelship_localcluster.cluster import LocalCluster

CORPUS = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def _expected(manifest: Path) -> list[str]:
    return [
        line.removeprefix("# expect:").strip()
        for line in manifest.read_text().splitlines()
        if line.startswith("# expect:")
    ]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 100
    assert all(_expected(m) for m in CORPUS), "every case names the field it expects"


@pytest.mark.parametrize("manifest", CORPUS, ids=lambda p: p.stem)
def test_apiserver_rejects_with_field_path(crds_installed: LocalCluster, manifest: Path) -> None:
    result = crds_installed.kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    # The apiserver's verdict, not a client-side check by kubectl.
    assert "is invalid" in result.stderr or "Error from server" in result.stderr, result.stderr
    for expected in _expected(manifest):
        assert expected in result.stderr, result.stderr
    # Nothing was stored.
    doc = yaml.safe_load(manifest.read_text())
    got = crds_installed.kubectl(
        "get", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", "-o", "name"
    )
    assert got.stdout == ""
