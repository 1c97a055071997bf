"""A process node for integration tests: a Node tainted for process pods, and the local
cluster's processpods agent serving it as its own process, with test images mapped to programs
on this machine."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from modelship_localcluster.cluster import LocalCluster

PROCESS_LABEL = "node.modelship.dev/runs-processes"


def python_program(wrapper: Path, script: Path) -> Path:
    """An executable named like a command a container may run, that runs `script`."""
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


class ProcessNodeAgent:
    """The processpods agent for one test node, as its own process."""

    def __init__(
        self,
        cluster: LocalCluster,
        node: str,
        root: Path,
        images: Mapping[str, Path],
        backoff_cap: int = 2,
    ) -> None:
        self.node = node
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.argv = [
            sys.executable,
            "-m",
            "modelship_localcluster.processpods",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--node={node}",
            f"--workdir={root / 'work'}",
            f"--logs={self.logs}",
            *(f"--extra-image={repo}={program}" for repo, program in images.items()),
            "--backoff-base=1",
            f"--backoff-cap={backoff_cap}",
            # Loopback addresses are machine-wide: a slice other clusters rarely use.
            f"--pod-cidr=127.77.{random.randrange(100, 250)}.0/24",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.logs / "processpods.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def container_log(self, namespace: str, pod: str) -> str:
        path = self.logs / f"{namespace}_{pod}_main.log"
        return path.read_text() if path.exists() else ""


def register_node(cluster: LocalCluster, prefix: str) -> str:
    """A Node only process pods may use (tainted), named `prefix`-random."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    cluster.request(
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, PROCESS_LABEL: "true"},
            },
            "spec": {"taints": [{"key": PROCESS_LABEL, "value": "true", "effect": "NoSchedule"}]},
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        },
    )
    return name


@contextmanager
def running(agent: ProcessNodeAgent) -> Iterator[ProcessNodeAgent]:
    """The agent started, and stopped cleanly afterwards (a failed stop fails the test)."""
    agent.start()
    yield agent
    if agent.process is not None and agent.process.poll() is None:
        assert agent.stop() == 0, agent.log.read_text()[-3000:]
