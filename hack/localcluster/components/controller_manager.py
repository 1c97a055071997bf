"""kube-controller-manager: every controller, tuned so hundreds of objects do not queue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .apiserver import SERVICE_CIDR
from .base import Layout
from .process import Command


def controller_manager_command(binary: Path, pki: Path, kubeconfig: Path) -> Command:
    return Command(
        [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            # A test cluster should not be the bottleneck when hundreds of objects change.
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
            "--v=1",
        ]
    )


@dataclass(frozen=True)
class ControllerManager:
    name: str = "kube-controller-manager"
    port_names: tuple[str, ...] = ()

    def prepare(self, layout: Layout) -> None:
        pass

    def command(self, layout: Layout) -> Command:
        return controller_manager_command(
            layout.binary("kube-controller-manager"),
            layout.pki,
            layout.kubeconfig("controller-manager"),
        )

    def ready(self, layout: Layout) -> bool:
        # It serves no port here (--secure-port=0); the cluster waits for what it does
        # (the default ServiceAccount) instead.
        return True
