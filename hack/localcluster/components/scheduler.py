"""kube-scheduler: the stock scheduler, so taints, tolerations and resources decide."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import Layout
from .process import Command


def scheduler_command(binary: Path, kubeconfig: Path) -> Command:
    return Command(
        [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--v=1",
        ]
    )


@dataclass(frozen=True)
class Scheduler:
    name: str = "kube-scheduler"
    port_names: tuple[str, ...] = ()

    def prepare(self, layout: Layout) -> None:
        pass

    def command(self, layout: Layout) -> Command:
        return scheduler_command(layout.binary("kube-scheduler"), layout.kubeconfig("scheduler"))

    def ready(self, layout: Layout) -> bool:
        # No port to ask (--secure-port=0); pods being bound is the proof.
        return True
