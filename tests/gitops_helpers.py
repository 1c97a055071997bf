"""What GitOps tools compute for our objects: kstatus (sigs.k8s.io/cli-utils, as Flux and kpt use
it) and Argo CD's Lua health scripts run in gopher-lua, both small mains that
hack/toolchain/build.sh builds from their Go modules into the toolchain cache. Also a watch that
keeps every version of the objects it sees, so a test can judge each state the cluster went
through rather than the ones a poll happened to catch."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from modelship_localcluster.cluster import LocalCluster, default_bin_dir

ROOT = Path(__file__).resolve().parent.parent
ARGO_SCRIPTS = ROOT / "docs" / "argocd"


def tool(name: str) -> Path:
    path = default_bin_dir() / name
    if not path.exists():
        pytest.skip(f"{path} is absent: `make toolchain` (hack/toolchain/build.sh) builds it")
    return path


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """kstatus's (status, message) for an object, given as JSON on stdin."""
    out = subprocess.run(
        [str(tool("kstatus")), "-o", "json"],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result = json.loads(out.stdout)
    return result["status"], result["message"]


def kstatus_live(cluster: LocalCluster, ns: str, kind: str, name: str) -> tuple[str, str]:
    """kstatus's (status, message) for an object it reads from the cluster itself."""
    out = subprocess.run(
        [
            str(tool("kstatus")),
            f"-kubeconfig={cluster.kubeconfig}",
            "-n",
            ns,
            "-o",
            "json",
            *(kind, name),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result = json.loads(out.stdout)
    return result["status"], result["message"]


def argo_health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Argo CD's health ({status, message}) for an object, by our script for `kind`."""
    script = ARGO_SCRIPTS / f"health-{kind.lower()}.lua"
    out = subprocess.run(
        [str(tool("argo-health")), str(script)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, str] = json.loads(out.stdout)
    return result


class Watch:
    """Every version of the objects of one resource in one namespace, as `kubectl get -w` sees
    them, in order."""

    def __init__(self, cluster: LocalCluster, ns: str, resource: str) -> None:
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [
                str(cluster.bin_dir / "kubectl"),
                f"--kubeconfig={cluster.kubeconfig}",
                *("get", resource, "-n", ns, "--watch", "-o", "json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self._process.stdout:
            buffer += line
            while buffer.strip():
                try:
                    obj, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break
                buffer = buffer.lstrip()[end:]
                with self._lock:
                    self.seen.append(obj)

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [o for o in self.seen if o["metadata"]["name"] == name]

    def until(
        self, what: str, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        """The first version of `name` for which `check` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for obj in self.versions(name):
                if check(obj):
                    return obj
            time.sleep(0.1)
        last = (self.versions(name) or [None])[-1]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last}")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


@contextmanager
def watching(cluster: LocalCluster, ns: str, resource: str) -> Iterator[Watch]:
    watch = Watch(cluster, ns, resource)
    try:
        # The watch has listed the (empty) namespace before anything is applied.
        time.sleep(0.5)
        yield watch
    finally:
        watch.stop()


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    """type → status."""
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}


def kwok_role(replicas: int = 1, **extra: Any) -> dict[str, Any]:
    """Pods on kwok's fake nodes: they run, then complete with exit code 0."""
    return {"replicas": replicas, "image": "example.test/kwok-trainer:1", **extra}


def training_job(name: str, roles: dict[str, Any], **run_policy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"replicaSpecs": roles, "runPolicy": run_policy},
    }
