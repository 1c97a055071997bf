"""kwok: the kubelet of every fake node (the ones annotated for it); their pods run nothing."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..nodes import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE
from .base import Layout
from .process import Command

# kwok gives pods addresses from here; a loopback range lets a test run a real server at a pod's
# own address (the Services' EndpointSlices then refuse those addresses).
POD_CIDR = "10.244.0.1/16"


def kwok_command(binary: Path, kubeconfig: Path, stages: list[Path], pod_cidr: str) -> Command:
    return Command(
        [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            *(f"--config={stage}" for stage in stages),
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}",
            f"--cidr={pod_cidr}",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            "--server-address=",
        ]
    )


def stage_files() -> list[Path]:
    stages = resources.files("modelship_localcluster") / "stages"
    return [Path(str(stages / "nodes.yaml")), Path(str(stages / "pods.yaml"))]


@dataclass(frozen=True)
class Kwok:
    pod_cidr: str = POD_CIDR
    name: str = "kwok"
    port_names: tuple[str, ...] = ()

    def prepare(self, layout: Layout) -> None:
        pass

    def command(self, layout: Layout) -> Command:
        return kwok_command(
            layout.binary("kwok"), layout.kubeconfig("kwok"), stage_files(), self.pod_cidr
        )

    def ready(self, layout: Layout) -> bool:
        # Its nodes turning Ready is the proof; the cluster waits for that.
        return True
