"""Real storage servers on loopback for `modelship fetch`: versitygw (S3 API over a POSIX folder),
fake-gcs-server (GCS JSON API) and Python's http.server. The Go-built ones come from
hack/toolchain/build.sh's cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_servers import free_port, serve, tool


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


@pytest.fixture(scope="session")
def gcs_on_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """fake-gcs-server keeping objects as files (BUCKET/NAME), so a test can damage an object
    behind its back: its endpoint and that folder."""
    binary = tool("fake-gcs-server")
    root = tmp_path_factory.mktemp("fake-gcs-disk")
    (root / "objects").mkdir()
    port = free_port()
    command = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
    command += ["-backend", "filesystem", "-filesystem-root", str(root / "objects")]
    command += ["-public-host", f"127.0.0.1:{port}", "-log-level", "warn"]
    with serve(command, port, root / "log"):
        yield f"http://127.0.0.1:{port}", root / "objects"
