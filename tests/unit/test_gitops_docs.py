"""docs/gitops.md shows the argocd-cm snippet with the health scripts of docs/argocd/ verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_argocd_cm_snippet_carries_the_tested_scripts() -> None:
    text = (DOCS / "gitops.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    (cm,) = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "ConfigMap"]
    assert cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"] == {
        f"resource.customizations.health.modelship.dev_{kind}": (
            DOCS / "argocd" / f"health-{kind.lower()}.lua"
        ).read_text()
        for kind in ("ModelDeployment", "TrainingJob")
    }
