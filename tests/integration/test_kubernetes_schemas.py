"""operator/api/kubernetes_schemas.py is what the pinned apiserver publishes, as generated."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from modelship_localcluster.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_match_the_apiserver(cluster: LocalCluster) -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_kubernetes_schemas", ROOT / "hack" / "gen_kubernetes_schemas.py"
    )
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    openapi = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3/api/v1").stdout)
    committed = (ROOT / "operator" / "api" / "kubernetes_schemas.py").read_text()
    assert generator.render(openapi) == committed, "run hack/gen_kubernetes_schemas.py"
