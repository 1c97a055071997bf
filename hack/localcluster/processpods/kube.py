"""A small client for the Kubernetes API: JSON requests and watches, with a kubeconfig's TLS
client certificate or bearer token. Only what this component needs."""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """The API answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status in {0, 429} or self.status >= 500


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    token: str | None
    insecure: bool


def _data_file(data: str, folder: Path, name: str) -> str:
    path = folder / name
    path.write_bytes(base64.b64decode(data))
    path.chmod(0o600)
    return str(path)


def load_kubeconfig(path: Path) -> Credentials:
    """The current context's server and credentials; inline `*-data` goes to private files."""
    config = yaml.safe_load(path.read_text())
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    context = contexts[context_name] if context_name else next(iter(contexts.values()))
    cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
    user = {u["name"]: u["user"] for u in config.get("users", [])}.get(context.get("user"), {})
    folder = Path(tempfile.mkdtemp(prefix="processpods-kubeconfig-"))

    def file_of(entry: Mapping[str, Any], key: str) -> str | None:
        if entry.get(f"{key}-data"):
            return _data_file(entry[f"{key}-data"], folder, key)
        value = entry.get(key)
        if value is None:
            return None
        return str((path.parent / value).resolve())

    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_file=file_of(cluster, "certificate-authority"),
        cert_file=file_of(user, "client-certificate"),
        key_file=file_of(user, "client-key"),
        token=user.get("token"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


class Kube:
    """JSON over HTTPS; every call raises ApiError on failure (status 0: not reachable)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        context = ssl.create_default_context(cafile=credentials.ca_file)
        if credentials.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if credentials.cert_file and credentials.key_file:
            context.load_cert_chain(credentials.cert_file, credentials.key_file)
        self._context = context

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Kube:
        return cls(load_kubeconfig(path))

    def _open(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, str] | None,
        content_type: str,
        timeout: float,
    ) -> Any:
        url = self._credentials.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", JSON)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self._credentials.token:
            request.add_header("Authorization", f"Bearer {self._credentials.token}")
        try:
            return urllib.request.urlopen(request, context=self._context, timeout=timeout)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ApiError(err.code, f"{method} {path}: {detail}") from None
        except (OSError, ssl.SSLError) as err:
            raise ApiError(0, f"{method} {path}: {err}") from None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
        timeout: float = 10,
    ) -> dict[str, Any]:
        with self._open(method, path, body, query, content_type, timeout) as response:
            try:
                text = response.read()
            except OSError as err:
                raise ApiError(0, f"{method} {path}: {err}") from None
        decoded: dict[str, Any] = json.loads(text) if text else {}
        return decoded

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def watch(
        self, path: str, query: Mapping[str, str], timeout_seconds: int
    ) -> Iterator[dict[str, Any]]:
        """Watch events, one decoded JSON object per line, until the server ends the watch."""
        query = {**query, "watch": "1", "timeoutSeconds": str(timeout_seconds)}
        response = self._open("GET", path, None, query, JSON, timeout_seconds + 30)
        with response:
            while True:
                try:
                    line = response.readline()
                except OSError as err:
                    raise ApiError(0, f"watch {path}: {err}") from None
                if not line:
                    return
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    yield event
