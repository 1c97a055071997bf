"""The kubelet of process nodes (package `modelship_localcluster.processpods`): pods bound to
such a node run as real processes on this machine. One kubelet process per node."""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from .base import Layout
from .process import Command

MODULE = "modelship_localcluster.processpods"
IDENTITY = "processpods"
# Pod addresses of process nodes: loopback, one /24 per node out of a /20 per cluster, so two
# clusters on one machine (a test session and the quick-start test's own) rarely share any.
LOOPBACK_POOL = ipaddress.IPv4Network("127.77.0.0/16")
CLUSTER_PREFIX = 20


def _looks_free(network: ipaddress.IPv4Network) -> bool:
    """No server of another cluster listens at the first pod address of the range."""
    with socket.socket() as sock, contextlib.suppress(OSError):
        sock.bind((str(network.network_address + 1), 8501))
        return True
    return False


def pick_process_cidr(rng: random.Random | None = None) -> str:
    """A random /20 of 127.77.0.0/16 whose first address is not in use."""
    choices = list(LOOPBACK_POOL.subnets(new_prefix=CLUSTER_PREFIX))
    (rng or random.Random()).shuffle(choices)
    for network in choices:
        if _looks_free(network):
            return str(network)
    return str(choices[0])


def node_cidr(cluster_cidr: str, index: int) -> str:
    """The index-th /24 of the cluster's range: each node's kubelet hands out its own."""
    subnets = list(ipaddress.IPv4Network(cluster_cidr).subnets(new_prefix=24))
    return str(subnets[index % len(subnets)])


def processpods_command(
    python: str, kubeconfig: Path, node: str, workdir: Path, logs: Path, pod_cidr: str
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
            f"--pod-cidr={pod_cidr}",
        ]
    )


@dataclass(frozen=True)
class ProcessPods:
    node: str
    pod_cidr: str = "127.77.0.0/24"

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
            self.pod_cidr,
        )

    def ready(self, layout: Layout) -> bool:
        # Its node turning Ready is the proof; the cluster waits for that.
        return True
