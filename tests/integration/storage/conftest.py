"""Real storage servers on loopback for `modelship fetch`: versitygw (S3 API over a POSIX folder),
fake-gcs-server (GCS JSON API) and Python's http.server. The Go-built ones come from
hack/toolchain/build.sh's cache."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    binary = tool("versitygw")
    root = tmp_path_factory.mktemp("versitygw")
    (root / "data").mkdir()
    port = free_port()
    command = [str(binary), "--access", ACCESS_KEY, "--secret", SECRET_KEY]
    command += ["--port", f"127.0.0.1:{port}", "posix", str(root / "data")]
    with serve(command, port, root / "log"):
        yield S3Server(f"http://127.0.0.1:{port}")


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = tool("fake-gcs-server")
    root = tmp_path_factory.mktemp("fake-gcs")
    port = free_port()
    command = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
    command += ["-backend", "memory", "-public-host", f"127.0.0.1:{port}", "-log-level", "warn"]
    with serve(command, port, root / "log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder served by `python -m http.server`, and its URL."""
    root = tmp_path_factory.mktemp("http")
    (root / "www").mkdir()
    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    command += ["--directory", str(root / "www")]
    with serve(command, port, root / "log"):
        yield root / "www", f"http://127.0.0.1:{port}"
