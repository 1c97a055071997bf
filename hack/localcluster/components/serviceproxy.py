"""The service proxy (package `modelship_localcluster.serviceproxy`): an HTTP forward proxy on
loopback that sends `http://<service>.<namespace>.svc:<port>/...` to a ready pod of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .base import Layout
from .process import Command, port_open

MODULE = "modelship_localcluster.serviceproxy"
IDENTITY = "serviceproxy"


def serviceproxy_command(python: str, kubeconfig: Path, port: int) -> Command:
    return Command(
        [python, "-m", MODULE, f"--kubeconfig={kubeconfig}", f"--listen=127.0.0.1:{port}"]
    )


@dataclass(frozen=True)
class ServiceProxy:
    name: str = "serviceproxy"
    port_names: tuple[str, ...] = ("serviceproxy",)

    def prepare(self, layout: Layout) -> None:
        pass

    def command(self, layout: Layout) -> Command:
        return serviceproxy_command(
            sys.executable, layout.kubeconfig(IDENTITY), layout.ports["serviceproxy"]
        )

    def ready(self, layout: Layout) -> bool:
        return port_open(layout.ports["serviceproxy"])
