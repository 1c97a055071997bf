"""The model store: an S3 API (versitygw over a folder) on loopback, holding bucket `models`
with the seed model at `half-plus-two/1/`. Pods get its address and keys from the Secret
`local-model-store`, the way they would get a cloud bucket's."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Layout
from .process import Command, port_open

BUCKET = "models"
SEED_PREFIX = "half-plus-two/1/"
SECRET_NAME = "local-model-store"
REGION = "us-east-1"
CREDENTIALS_FILE = "model-store.json"
DATA_DIR = "model-store"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


def load_or_create_credentials(root: Path) -> Credentials:
    """Made at the first start, then reused, so Secrets made earlier stay valid."""
    path = root / CREDENTIALS_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        return Credentials(saved["access_key"], saved["secret_key"])
    made = Credentials(f"modelship-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    path.write_text(json.dumps({"access_key": made.access_key, "secret_key": made.secret_key}))
    path.chmod(0o600)
    return made


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def client_env(port: int, credentials: Credentials) -> dict[str, str]:
    """What `modelship fetch` needs to read the store."""
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_ENDPOINT_URL": endpoint(port),
        "AWS_REGION": REGION,
    }


def secret_manifest(namespace: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "modelship-cluster"},
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in env.items()},
    }


def modelstore_command(
    binary: Path, port: int, data: Path, credentials: Credentials, base_env: dict[str, str]
) -> Command:
    # The keys go through the environment, not argv, so `ps` does not show them.
    env = {
        **base_env,
        "ROOT_ACCESS_KEY_ID": credentials.access_key,
        "ROOT_SECRET_ACCESS_KEY": credentials.secret_key,
    }
    return Command(
        [str(binary), "--quiet", "--port", f"127.0.0.1:{port}", "posix", str(data)], env=env
    )


def seed_objects(model_dir: Path, prefix: str = SEED_PREFIX) -> dict[str, Path]:
    """Object key → file for every file of the model folder."""
    return {
        prefix + path.relative_to(model_dir).as_posix(): path
        for path in sorted(model_dir.rglob("*"))
        if path.is_file()
    }


def s3_client(port: int, credentials: Credentials) -> Any:
    import boto3  # noqa: PLC0415 - boto3 takes a moment to import; only the seeding needs it
    from botocore.config import Config  # noqa: PLC0415

    return boto3.client(
        "s3",
        endpoint_url=endpoint(port),
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )


def seed(port: int, credentials: Credentials, model_dir: Path) -> int:
    """Bucket `models` with the model under SEED_PREFIX; returns how many objects were
    uploaded (none when a previous start already did it)."""
    client = s3_client(port, credentials)
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET)
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=SEED_PREFIX)
    present = {item["Key"] for item in listing.get("Contents", [])}
    uploaded = 0
    for key, path in seed_objects(model_dir).items():
        if key not in present:
            client.upload_file(str(path), BUCKET, key)
            uploaded += 1
    return uploaded


@dataclass(frozen=True)
class ModelStore:
    name: str = "modelstore"
    port_names: tuple[str, ...] = ("modelstore",)

    def prepare(self, layout: Layout) -> None:
        (layout.root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        load_or_create_credentials(layout.root)

    def command(self, layout: Layout) -> Command:
        return modelstore_command(
            layout.binary("versitygw"),
            layout.ports["modelstore"],
            layout.root / DATA_DIR,
            load_or_create_credentials(layout.root),
            dict(os.environ),
        )

    def ready(self, layout: Layout) -> bool:
        return port_open(layout.ports["modelstore"])
