"""The container image, built for real and run: hack/images/build.sh builds the Dockerfile with
buildah (vfs storage, chroot isolation) on a Debian bookworm base made by debootstrap, since no
registry or container engine is at hand. The server image then serves half_plus_two through
`buildah run`, and the operator's and the init container's commands start in it.

A cold build (debootstrap, then TensorFlow and the other locked dependencies from PyPI) takes 3
to 5 minutes on two CPUs; the base is cached under $MODELSHIP_CACHE/images, and the image by a
hash of its inputs, so a rerun with no change in them skips the build (the module then takes
about 20 s), and one after a source change rebuilds on the cached base (2 to 4 minutes). The
static check below keeps the Dockerfile honest even where buildah can't run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "images" / "build.sh"
IMAGE = "localhost/modelship:e2e"
HALF_PLUS_TWO = ROOT.parent / "shared" / "testdata" / "tf-serving" / "saved_model_half_plus_two_cpu"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _scripts() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


def test_dockerfile_matches_the_repository() -> None:
    """What the Dockerfile copies exists and passes .dockerignore, its entrypoint and the commands
    the chart and the operator run are console scripts, and its base is overridable."""
    steps = _instructions()
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [args.split() for word, args in steps if word == "COPY" and "--from=" not in args]
    assert copies
    for parts in copies:
        for source in parts[:-1]:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source

    entrypoint = json.loads(next(args for word, args in steps if word == "ENTRYPOINT"))
    assert entrypoint == ["modelship-server"]
    scripts = _scripts()
    chart = (ROOT / "charts" / "modelship" / "templates" / "deployment.yaml").read_text()
    assert "command: [modelship-operator]" in chart
    for command in ("modelship-server", "modelship-operator", "modelship"):
        assert command in scripts, command

    # Every stage starts from the overridable base; its default is the Python pyproject requires.
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert [args.split()[0] for word, args in steps if word == "FROM"] == ["${BASE_IMAGE}"] * 2
    # The image installs the uv that hack/bootstrap.sh pins (the same `uv export` of uv.lock).
    bootstrap = (ROOT / "hack" / "bootstrap.sh").read_text()
    uv = re.search(r"^UV_VERSION=(\S+)", bootstrap, re.M)
    assert uv
    assert f"uv=={uv.group(1)}" in (ROOT / "Dockerfile").read_text()


def _buildah(*args: str, timeout: float = 120) -> str:
    """buildah on the build script's store (vfs, chroot isolation, under the cache)."""
    done = subprocess.run(
        [str(BUILD), "--buildah", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"buildah {shlex.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0 or not shutil.which("buildah") or not shutil.which("debootstrap"):
        pytest.skip("building images needs root with buildah and debootstrap (make setup)")
    started = time.monotonic()
    built = subprocess.run(
        [str(BUILD), IMAGE], capture_output=True, text=True, timeout=3000, check=False
    )
    assert built.returncode == 0, built.stderr[-6000:]
    print(f"image built in {time.monotonic() - started:.0f} s")
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    """One working container for the module (with vfs, `buildah from` copies the whole image)."""
    name = _buildah("from", "--pull=never", image)
    yield name
    _buildah("rm", name)


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, object] = json.load(response)
        return body


@pytest.mark.timeout(3600)
def test_server_image_serves_half_plus_two(container: str) -> None:
    """The image's model server, run by buildah as the image's user (1000), answers TF Serving's
    reference prediction for half_plus_two."""
    rest = free_port()
    run = subprocess.Popen(
        [
            str(BUILD),
            "--buildah",
            "run",
            "--volume",
            f"{HALF_PLUS_TWO}:/models/half_plus_two:ro",
            container,
            "--",
            "modelship-server",
            "--host=127.0.0.1",
            "--port=0",
            f"--rest_api_port={rest}",
            "--model_name=half_plus_two",
            "--model_base_path=/models/half_plus_two",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{rest}/v1/models/half_plus_two"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert run.poll() is None, run.communicate()[0][-4000:]
            try:
                status = _get(base)
                versions = status["model_version_status"]
                assert isinstance(versions, list)
                if versions and versions[0]["state"] == "AVAILABLE":
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the server in the image never became ready"
            time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}:predict",
            data=json.dumps({"instances": [1.0, 2.0, 5.0]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == {"predictions": [2.5, 3.0, 4.5]}
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


@pytest.mark.timeout(3600)
def test_operator_and_fetch_commands_start_in_the_image(container: str) -> None:
    """The chart's operator command and the init container's `modelship fetch` run in the image."""
    operator = _buildah("run", container, "--", "modelship-operator", "--help")
    assert "usage: modelship-operator" in operator
    assert "--uri" in _buildah("run", container, "--", "modelship", "fetch", "--help")
    assert _buildah("run", container, "--", "id", "-u") == "1000"
