"""Real storage servers on loopback, shared by the storage tests and the e2e tests: versitygw
(S3 API over a POSIX folder) from hack/toolchain/build.sh's cache."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from storage_helpers import ACCESS_KEY, SECRET_KEY, S3Server

CACHE = Path(
    os.environ.get("MODELSHIP_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelship"
)


def tool(name: str) -> Path:
    path = CACHE / "bin" / name
    if not path.exists():
        pytest.skip(f"{name} is not built: run hack/toolchain/build.sh")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until its port answers, stop it afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not listen on {port}") from None
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def s3_server_in(root: Path) -> Iterator[S3Server]:
    binary = tool("versitygw")
    (root / "data").mkdir()
    port = free_port()
    command = [str(binary), "--access", ACCESS_KEY, "--secret", SECRET_KEY]
    command += ["--port", f"127.0.0.1:{port}", "posix", str(root / "data")]
    with serve(command, port, root / "log"):
        yield S3Server(f"http://127.0.0.1:{port}", root / "data")
