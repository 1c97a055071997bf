"""What every component offers the orchestrator, and the folder layout they share."""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .process import Command


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its files, which binaries it runs and the ports it picked.
    `ports` is the cluster's own dict, so ports picked later show up here too."""

    root: Path
    bin_dir: Path
    ports: dict[str, int]

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def kubeconfig(self, identity: str) -> Path:
        """The kubeconfig of one component's identity (pki/<identity>.kubeconfig)."""
        return self.pki / f"{identity}.kubeconfig"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name


class Component(Protocol):
    """One process of the cluster. `command` is pure; `prepare` writes what it reads (config
    files, folders) before it starts; `ready` answers whether it serves."""

    @property
    def name(self) -> str: ...

    @property
    def port_names(self) -> tuple[str, ...]: ...

    def prepare(self, layout: Layout) -> None: ...

    def command(self, layout: Layout) -> Command: ...

    def ready(self, layout: Layout) -> bool: ...


def admin_ssl_context(layout: Layout) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return context


def api_request(layout: Layout, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the apiserver as the cluster admin; the decoded JSON, or the text."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(layout.server + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, context=admin_ssl_context(layout), timeout=10) as response:
        text = response.read()
    return json.loads(text) if text.startswith(b"{") else text.decode()


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        status: int = response.status
        return 200 <= status < 300
