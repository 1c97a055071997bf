"""gs:// with google-cloud-storage. Credentials come from the file GOOGLE_APPLICATION_CREDENTIALS
names; without it requests are anonymous (public buckets). STORAGE_EMULATOR_HOST points the client
at a GCS-API server such as fake-gcs-server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth
from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage

from .errors import SourceError
from .paths import safe_join, under_prefix
from .uri import Location

READ_ONLY = ("https://www.googleapis.com/auth/devstorage.read_only",)


def client_from_env(env: dict[str, str] | None = None) -> Any:
    env = dict(os.environ) if env is None else env
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not key_file:
        return storage.Client.create_anonymous_client()
    try:
        # google.auth is typed only in part.
        load = google.auth.load_credentials_from_file
        credentials, project = load(key_file, scopes=READ_ONLY)  # type: ignore[no-untyped-call]
    except (OSError, GoogleAuthError) as e:
        raise SourceError(
            f"cannot load GOOGLE_APPLICATION_CREDENTIALS ({key_file}): {type(e).__name__}"
        ) from e
    # Listing and reading objects need no project; the client only wants one to exist.
    return storage.Client(project=project or "none", credentials=credentials)


def download(location: Location, target: Path) -> None:
    client = client_from_env()
    try:
        blobs = list(_blobs(client, location.bucket, location.prefix))
        if not blobs:
            raise SourceError("no objects under this prefix")
        for blob, relative in blobs:
            dest = safe_join(target, relative)
            dest.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(dest))
    except gexc.NotFound as e:
        raise SourceError("NotFound: the bucket does not exist") from e
    except (gexc.Forbidden, gexc.Unauthorized) as e:
        raise SourceError(
            f"{type(e).__name__}: access denied: check GOOGLE_APPLICATION_CREDENTIALS and the "
            "bucket's permissions"
        ) from e
    except gexc.GoogleAPIError as e:
        raise SourceError(f"{type(e).__name__}: {getattr(e, 'message', e)}") from e
    except GoogleAuthError as e:
        raise SourceError(f"cannot authenticate: {type(e).__name__}") from e


def _blobs(client: Any, bucket: str, prefix: str) -> Iterator[tuple[Any, str]]:
    """(blob, path below the prefix) for each object the URI names."""
    for blob in client.list_blobs(bucket, prefix=prefix):
        relative = under_prefix(blob.name, prefix)
        if relative is not None:
            yield blob, relative
