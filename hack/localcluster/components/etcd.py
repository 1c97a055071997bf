"""etcd: the cluster's store, a single member on loopback."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .base import Layout
from .process import Command


def etcd_command(binary: Path, data_dir: Path, client_port: int, peer_port: int) -> Command:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return Command(
        [
            str(binary),
            "--name=modelship",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=modelship={peer}",
            # A throwaway test store: durability is not worth the fsync latency.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
    )


@dataclass(frozen=True)
class Etcd:
    name: str = "etcd"
    port_names: tuple[str, ...] = ("etcd", "etcd-peer")

    def prepare(self, layout: Layout) -> None:
        (layout.root / "etcd").mkdir(parents=True, exist_ok=True)

    def command(self, layout: Layout) -> Command:
        return etcd_command(
            layout.binary("etcd"),
            layout.root / "etcd",
            layout.ports["etcd"],
            layout.ports["etcd-peer"],
        )

    def ready(self, layout: Layout) -> bool:
        url = f"http://127.0.0.1:{layout.ports['etcd']}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")
