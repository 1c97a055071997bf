"""Running `modelship fetch` as the init container does (a subprocess, settings from the
environment only), and small model trees to fetch."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
ACCESS_KEY = "modelship-test"
SECRET_KEY = "test-secret-0b8f1c"
REAL_MODEL = (
    ROOT.parent / "shared" / "testdata" / "tf-serving" / "saved_model_half_plus_two_2_versions"
)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    termination_log: str


def modelship_fetch(
    uri: str,
    dest: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 120,
) -> Run:
    """Nothing from the test's own environment leaks in: no AWS_* or GOOGLE_* variables, and a
    HOME with no ~/.aws files."""
    log = dest.parent / f"{dest.name}.termination-log"
    home = dest.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "modelship"), "fetch", f"--uri={uri}"]
    command += [f"--dest={dest}", f"--termination-log={log}", *args]
    proc = subprocess.run(
        command,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    message = log.read_text() if log.exists() else ""
    return Run(proc.returncode, proc.stdout, proc.stderr, message)


def saved_model_files(prefix: str = "") -> dict[str, bytes]:
    """The file layout of a SavedModel (nothing loads it here)."""
    return {
        f"{prefix}saved_model.pb": b"\x08\x01" + os.urandom(64),
        f"{prefix}variables/variables.index": os.urandom(32),
        f"{prefix}variables/variables.data-00000-of-00001": os.urandom(256),
    }


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` by relative path, leaving out modelship's own marker."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".modelship")
    }


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    # versitygw's POSIX folder (BUCKET/KEY), for tests that damage objects behind its back.
    data: Path | None = None

    def admin(self) -> Any:
        """A boto3 client with the root credentials, for arranging buckets and objects."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def env(self, secret: str = SECRET_KEY) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1",
        }


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """A plain tar of `files`, ending properly (end-of-archive blocks and record padding)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cut_after_last_member(archive: bytes) -> bytes:
    """The tar up to the end of its last member's padded data: every member whole, no end."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        last = tar.getmembers()[-1]
    return archive[: last.offset_data + -(-last.size // 512) * 512]
