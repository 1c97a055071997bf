"""The README's quick start as a new user runs it: `make up`'s command, the shell exports, the
local example served for real and a prediction with curl through the cluster's proxy, its
metrics in Prometheus, the other examples on the fake nodes, a second `up`, and `down`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelship_localcluster", f"--root={root}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _exports(text: str) -> dict[str, str]:
    """What `eval "$(modelship-cluster env)"` would set, resolved as the shell does."""
    env = dict(os.environ)
    for line in text.splitlines():
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            env[name] = os.path.expandvars(value.strip("'\"")).replace("$PATH", env["PATH"])
    return env


def test_up_serve_predict_metrics_examples_and_down(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    up = _cli(root, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "modelship operator running" in up.stdout
        exported = _cli(root, "env")
        assert exported.returncode == 0, exported.stderr
        env = _exports(exported.stdout)
        for name in ("KUBECONFIG", "MODELSHIP_PROXY", "MODELSHIP_PROMETHEUS"):
            assert env.get(name), exported.stdout

        def run(*argv: str, timeout: float = 330) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                argv, env=env, capture_output=True, text=True, check=False, timeout=timeout
            )

        applied = run("kubectl", "apply", "-f", str(ROOT / "examples/modeldeployment-local.yaml"))
        assert applied.returncode == 0, applied.stderr
        waited = run(
            "kubectl",
            "wait",
            "--for=condition=Ready",
            "modeldeployment/half-plus-two",
            "--timeout=300s",
        )
        assert waited.returncode == 0, waited.stderr
        predicted = run(
            "curl",
            "-sS",
            "--fail-with-body",
            "-x",
            env["MODELSHIP_PROXY"],
            "-d",
            '{"instances": [1.0, 2.0, 5.0]}',
            "http://half-plus-two.default.svc:8501/v1/models/half-plus-two:predict",
        )
        assert predicted.returncode == 0, predicted.stdout + predicted.stderr
        assert json.loads(predicted.stdout) == {"predictions": [2.5, 3.0, 4.5]}

        # The server's metrics reach Prometheus with the labels the autoscaler reads.
        query = 'modelship_server_inflight_requests{modeldeployment="half-plus-two"}'
        url = f"{env['MODELSHIP_PROMETHEUS']}/api/v1/query?" + urllib.parse.urlencode(
            {"query": query}
        )
        series: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while not series and time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=10) as response:
                series = json.loads(response.read())["data"]["result"]
            time.sleep(1)
        assert series, f"no {query} in Prometheus"
        assert series[0]["metric"]["namespace"] == "default"  # type: ignore[index]

        # The autoscaler reads it: ScalingActive, and describe says so.
        active = run(
            "kubectl",
            "wait",
            "--for=condition=ScalingActive",
            "modeldeployment/half-plus-two",
            "--timeout=60s",
        )
        assert active.returncode == 0, active.stderr

        # The other examples run on kwok's fake nodes (GPU scheduling included); the local
        # train → deploy pair trains for real on the process node (test_training.py).
        for example in sorted((ROOT / "examples").glob("*.yaml")):
            if example.name in ("trainingjob-local.yaml", "modeldeployment-from-training.yaml"):
                continue
            applied = run("kubectl", "apply", "-f", str(example))
            assert applied.returncode == 0, applied.stderr
        waited = run(
            "kubectl", "wait", "--for=condition=Ready", "modeldeployment", "--all", "--timeout=90s"
        )
        assert waited.returncode == 0, waited.stderr
        listing = run("kubectl", "get", "modelship").stdout
        for name in ("half-plus-two", "flowers", "mnist-gpu", "mnist-distributed"):
            assert name in listing, listing
        gpu_node = run(
            "kubectl",
            "get",
            "pods",
            "-l",
            "modelship.dev/modeldeployment=mnist-gpu",
            "-o",
            "jsonpath={.items[0].spec.nodeName}",
        ).stdout
        assert gpu_node.startswith("gpu-a100-"), gpu_node
        # A second `up` finds the running cluster and changes nothing.
        again = _cli(root, "up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
    finally:
        down = _cli(root, "down")
    assert down.returncode == 0, down.stderr
    assert not root.exists()
