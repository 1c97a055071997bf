"""Start and stop real modelship-server processes (imported by the tests beside it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
TESTDATA = ROOT.parent / "shared" / "testdata" / "tf-serving"
START_TIMEOUT = 180.0
MAX_BODY = 1 << 20
METRICS_PATH = "/custom/prometheus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `python -m modelship_server` process on free loopback ports."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.rest_port = free_port()
        self.grpc_port = free_port()
        self.log = log
        self.args = [
            sys.executable,
            "-m",
            "modelship_server",
            f"--port={self.grpc_port}",
            f"--rest_api_port={self.rest_port}",
            "--host=127.0.0.1",
            *args,
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            self.args, stdout=self._log_file, stderr=subprocess.STDOUT, env=env
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_until(self, check: Callable[[httpx.Client], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if check(client):
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        pytest.fail(f"server not ready in {timeout}s:\n{self.log_tail()}")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        self.wait_until(lambda c: c.get("/v2/health/ready").status_code == 200, timeout)
        return self

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return int(self.proc.returncode)


def metric_value(text: str, name: str, **labels: str) -> float:
    """A sample from Prometheus text exposition (0 when absent)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        present = set(rest.rstrip("}").split(",")) if rest else set()
        if wanted <= present:
            return float(value)
    return 0.0


def save_slow_model(path: Path, iterations: int = 100_000) -> None:
    """A SavedModel y = 2x that spins a graph loop first, so requests overlap predictably."""
    import tensorflow as tf  # noqa: PLC0415  (only the tests that build models pay for it)

    class Slow(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])  # type: ignore[misc]
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            _, acc = tf.while_loop(
                lambda i, a: i < iterations,
                lambda i, a: (i + 1, a + 1.0),
                (tf.constant(0), tf.constant(0.0)),
            )
            return {"y": x * 2.0 + acc * 0.0}

    module = Slow()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
