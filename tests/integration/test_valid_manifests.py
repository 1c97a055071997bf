"""The apiserver accepts every manifest in valid/: the schema refuses no spec a pod would take."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_localcluster.cluster import LocalCluster

CORPUS = sorted((Path(__file__).parent / "valid").glob("*.yaml"))


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("manifest", CORPUS, ids=lambda p: p.stem)
def test_apiserver_accepts(crds_installed: LocalCluster, manifest: Path) -> None:
    # A server-side dry run runs the whole admission chain and stores nothing.
    result = crds_installed.kubectl(
        "apply", "--dry-run=server", "--server-side", "-f", str(manifest), check=False
    )
    assert result.returncode == 0, result.stderr
