"""The README's quick start as a new user runs it: `make up`'s command, the examples, `down`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelship_localcluster", f"--root={root}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_up_examples_ready_and_down(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    up = _cli(root, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "export KUBECONFIG=" in up.stdout
        assert "modelship operator running" in up.stdout
        kubeconfig = root / "kubeconfig"
        bin_dir = next(
            line.split("=", 1)[1].split(":", 1)[0]
            for line in up.stdout.splitlines()
            if "export PATH=" in line
        )
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [f"{bin_dir}/kubectl", *args],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )

        applied = kubectl("apply", "-f", str(ROOT / "examples"))
        assert applied.returncode == 0, applied.stderr
        waited = kubectl(
            "wait", "--for=condition=Ready", "modeldeployment", "--all", "--timeout=90s"
        )
        assert waited.returncode == 0, waited.stderr
        listing = kubectl("get", "modelship").stdout
        assert "flowers" in listing
        assert "mnist-gpu" in listing
        assert "mnist-distributed" in listing
        gpu_pod = kubectl(
            "get",
            "pods",
            "-l",
            "modelship.dev/modeldeployment=mnist-gpu",
            "-o",
            "jsonpath={.items[0].spec.nodeName}",
        ).stdout
        assert gpu_pod.startswith("gpu-a100-"), gpu_pod
        # A second `up` finds the running cluster and changes nothing.
        again = _cli(root, "up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
    finally:
        down = _cli(root, "down")
    assert down.returncode == 0, down.stderr
    assert not root.exists()
