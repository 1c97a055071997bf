"""Uploading one exported model version: `upload(folder, uri)` copies a local SavedModel folder to
s3://, gs:// or file:// (a PVC reaches the trainer as file:///mnt/output/...).

An upload is complete or it fails, as seen by a reader that looks for a SavedModel:

- file://: the files are copied into a hidden temporary folder next to the target, which is then
  renamed onto the target in one step (same file system, so the rename is atomic).
- s3:// and gs://: object stores have no rename of a prefix, so every other file goes first and
  `saved_model.pb` (or `.pbtxt`) last. TF Serving, `modelship fetch` and TF's loader only treat a
  version folder as a model once it holds `saved_model.pb`, so a reader either sees no model or a
  whole one. An upload that fails halfway leaves files without a `saved_model.pb`, which no reader
  loads; the next run writes a new (newer) version.

Credentials and endpoints come from the environment, exactly as for `modelship fetch`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from google.cloud import storage

from . import gcs, s3
from .errors import FetchError, SourceError, redact
from .uri import Location, display_uri, parse_uri

# What marks a folder as a SavedModel; written after everything else.
MARKERS = ("saved_model.pb", "saved_model.pbtxt")
SCHEMES = ("s3", "gs", "file")


class UploadError(Exception):
    """An upload failed; its text is one line a user can act on, without credentials."""


def upload(source: Path, uri: str) -> None:
    """Copy every file below `source` to `uri` (the version folder itself, e.g.
    s3://bucket/models/digits/1700000000)."""
    shown = display_uri(uri)
    try:
        location = parse_uri(uri)
    except FetchError as e:
        raise UploadError(redact(str(e).replace("cannot read", "cannot write to"))) from e
    if location.scheme not in SCHEMES:
        raise UploadError(
            f"cannot write to {shown}: unsupported scheme for an upload (use s3://, gs:// "
            "or file://)"
        )
    if not source.is_dir():
        raise UploadError(f"cannot upload {source}: not a folder")
    try:
        if location.scheme == "file":
            _to_folder(source, Path(location.path))
        elif location.scheme == "s3":
            _to_s3(source, location)
        else:
            _to_gcs(source, location)
    except SourceError as e:
        raise UploadError(redact(f"cannot write to {shown}: {e}")) from e


def upload_order(source: Path) -> list[str]:
    """Relative paths of the files below `source`, SavedModel markers last."""
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    return [f for f in files if f not in MARKERS] + [f for f in files if f in MARKERS]


def _to_folder(source: Path, target: Path) -> None:
    if target.exists():
        raise SourceError("the version folder already exists")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            os.chmod(staging, 0o755)  # mkdtemp makes it 0700; readers run as other users
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except PermissionError as e:
        raise SourceError(f"permission denied: {e.filename}") from e
    except OSError as e:
        raise SourceError(f"{e.strerror or type(e).__name__}: {e.filename or ''}") from e


def _keys(prefix: str, relative: Iterable[str]) -> list[tuple[str, str]]:
    return [(f"{prefix}/{r}" if prefix else r, r) for r in relative]


def _to_s3(source: Path, location: Location) -> None:
    client = s3.client_from_env()
    try:
        for key, relative in _keys(location.prefix, upload_order(source)):
            client.upload_file(str(source / relative), location.bucket, key)
    except ClientError as e:
        raise SourceError(s3.describe(e)) from e
    except EndpointConnectionError as e:
        raise SourceError(
            f"cannot connect to the S3 endpoint {client.meta.endpoint_url}: check "
            "AWS_ENDPOINT_URL and the network"
        ) from e
    except S3UploadFailedError as e:  # upload_file's wrapper around a failed ClientError
        cause = e.__context__
        raise SourceError(s3.describe(cause) if isinstance(cause, ClientError) else str(e)) from e
    except BotoCoreError as e:
        raise SourceError(f"{type(e).__name__}: {e}") from e


def _to_gcs(source: Path, location: Location) -> None:
    client = _gcs_client()
    with gcs.source_errors():
        bucket = client.bucket(location.bucket)
        for name, relative in _keys(location.prefix, upload_order(source)):
            bucket.blob(name).upload_from_filename(str(source / relative), timeout=(10, 300))


READ_WRITE = ("https://www.googleapis.com/auth/devstorage.read_write",)


def _gcs_client() -> Any:
    """As gcs.client_from_env (same accepted key types), with a scope that may write."""
    setting = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    if not setting:
        return storage.Client.create_anonymous_client()
    credentials, project = gcs._load_credentials(setting)
    if hasattr(credentials, "with_scopes"):  # service accounts; user keys carry their own scopes
        credentials = credentials.with_scopes(READ_WRITE)
    return storage.Client(project=project or "none", credentials=credentials)
