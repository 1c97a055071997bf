"""The layers of docs/model-server.md hold: protocol adapters reach the data plane only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOLS = Path(__file__).resolve().parents[3] / "model_server" / "protocols"
ADAPTERS = ("tfserving_rest", "tfserving_grpc", "v2_rest", "v2_grpc")


def _imported_modules(path: Path) -> set[str]:
    """Every module the file imports, relative ones resolved within the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("protocols." if node.level == 1 else "") + (node.module or "")
            if node.level and not node.module:
                found.update(f"protocols.{alias.name}" for alias in node.names)
            else:
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_imports_neither_the_model_manager_nor_another_adapter(adapter: str) -> None:
    imported = _imported_modules(PROTOCOLS / f"{adapter}.py")
    assert not any(name.startswith("core.manager") for name in imported)
    others = {f"protocols.{other}" for other in ADAPTERS if other != adapter}
    assert not any(name.split(".")[:2] == m.split(".") for name in imported for m in others)
