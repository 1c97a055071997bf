"""The kubelet of process nodes (package `modelship_localcluster.processpods`): pods bound to
such a node run as real processes on this machine. One kubelet process per node."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .base import Layout
from .process import Command

MODULE = "modelship_localcluster.processpods"
IDENTITY = "processpods"


def processpods_command(
    python: str, kubeconfig: Path, node: str, workdir: Path, logs: Path
) -> Command:
    return Command(
        [
            python,
            "-m",
            MODULE,
            f"--kubeconfig={kubeconfig}",
            f"--node={node}",
            f"--workdir={workdir}",
            f"--logs={logs}",
        ]
    )


@dataclass(frozen=True)
class ProcessPods:
    node: str

    @property
    def name(self) -> str:
        return f"processpods-{self.node}"

    @property
    def port_names(self) -> tuple[str, ...]:
        return ()

    def prepare(self, layout: Layout) -> None:
        (layout.root / "pods").mkdir(parents=True, exist_ok=True)
        (layout.logs / "pods").mkdir(parents=True, exist_ok=True)

    def command(self, layout: Layout) -> Command:
        return processpods_command(
            sys.executable,
            layout.kubeconfig(IDENTITY),
            self.node,
            layout.root / "pods",
            layout.logs / "pods",
        )

    def ready(self, layout: Layout) -> bool:
        # Its node turning Ready is the proof; the cluster waits for that.
        return True
