"""gs:// with google-cloud-storage. Credentials come from GOOGLE_APPLICATION_CREDENTIALS (a file
path, or the JSON key itself); without it requests are anonymous (public buckets).
STORAGE_EMULATOR_HOST points the client at a GCS-API server such as fake-gcs-server."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from .errors import SourceError
from .limits import Meter
from .paths import safe_join, under_prefix
from .transfer import MeteredFile, check_complete
from .uri import Location

READ_ONLY = ("https://www.googleapis.com/auth/devstorage.read_only",)


def client_from_env(env: dict[str, str] | None = None) -> Any:
    env = dict(os.environ) if env is None else env
    setting = env.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    if not setting:
        return storage.Client.create_anonymous_client()
    credentials, project = _load_credentials(setting)
    # Listing and reading objects need no project; the client only wants one to exist.
    return storage.Client(project=project or "none", credentials=credentials)


def _load_credentials(setting: str) -> tuple[Any, str | None]:
    """From the file GOOGLE_APPLICATION_CREDENTIALS names or, since a Secret passed with envFrom
    can only carry values, from the JSON document it holds. Only the key types named in
    LOADERS are accepted (google-auth's generic loaders would take any configuration, including
    ones that run programs). Errors never echo the contents."""
    inline = setting.startswith("{")
    shown = "(inline JSON)" if inline else f"({setting})"
    try:
        info = json.loads(setting if inline else Path(setting).read_text())
        kind = info.get("type") if isinstance(info, dict) else None
        if kind not in LOADERS:
            raise SourceError(
                f"cannot use GOOGLE_APPLICATION_CREDENTIALS {shown}: credential type {kind!r} "
                f"is not supported (use one of {', '.join(sorted(LOADERS))})"
            )
        credentials = LOADERS[kind](info)
    except (OSError, ValueError, GoogleAuthError) as e:
        raise SourceError(
            f"cannot load GOOGLE_APPLICATION_CREDENTIALS {shown}: {type(e).__name__}"
        ) from e
    project = info.get("project_id") or info.get("quota_project_id")
    return credentials, project


def _service_account(info: dict[str, Any]) -> Any:
    load: Any = service_account.Credentials.from_service_account_info
    return load(info, scopes=READ_ONLY)


def _authorized_user(info: dict[str, Any]) -> Any:
    load: Any = user_credentials.Credentials.from_authorized_user_info
    return load(info, scopes=READ_ONLY)


LOADERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "service_account": _service_account,
    "authorized_user": _authorized_user,
}


@contextmanager
def source_errors() -> Iterator[None]:
    """The GCS client's errors as SourceError, in the words a user can act on (download and
    upload alike)."""
    try:
        yield
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


def download(location: Location, target: Path, meter: Meter) -> None:
    client = client_from_env()
    with source_errors():
        blobs = list(_blobs(client, location.bucket, location.prefix))
        if not blobs:
            raise SourceError("no objects under this prefix")
        for blob, relative in blobs:
            dest = safe_join(target, relative)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _get(blob, dest, meter)


def _blobs(client: Any, bucket: str, prefix: str) -> Iterator[tuple[Any, str]]:
    """(blob, path below the prefix) for each object the URI names."""
    for blob in client.list_blobs(bucket, prefix=prefix):
        relative = under_prefix(blob.name, prefix)
        if relative is not None:
            yield blob, relative


def _get(blob: Any, dest: Path, meter: Meter) -> None:
    """The client checks the object's crc32c (or md5Hash) itself; the length is checked here
    against the size the listing gave."""
    meter.add_file()
    with dest.open("wb") as out:
        sink = MeteredFile(out, meter)
        try:
            # The client checks crc32c when google-crc32c is installed, else md5Hash.
            blob.download_to_file(sink, checksum="auto", timeout=(10, 60))
        except DataCorruption as e:
            raise SourceError(
                f"{dest.name} is corrupt: its checksum does not match the object's crc32c"
            ) from e
    check_complete(dest.name, sink.written, blob.size)
