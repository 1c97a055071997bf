"""A small client for Prometheus' HTTP API: instant queries only, standard library only.

Errors come as two classes whose messages go straight into a ModelDeployment condition, so
they say what failed and where: `PrometheusUnavailable` (cannot reach or use the server) and
`QueryError` (the server refused the query, with its own explanation). The bearer token is
read from its file on every call, so a rotated Secret takes effect without a restart, and it
never appears in a message.
"""

from __future__ import annotations

import json
import math
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any, NamedTuple

QUERY_PATH = "/api/v1/query"
# Longer queries go in a POST body: URLs past a few kB are refused by some proxies and servers.
MAX_GET_QUERY = 2000
_MAX_QUERY_IN_MESSAGE = 500


class Sample(NamedTuple):
    labels: dict[str, str]
    value: float


class PrometheusError(Exception):
    """Base of the client's errors."""


class PrometheusUnavailable(PrometheusError):  # noqa: N818  (reads as the condition it names)
    """Prometheus could not be reached or did not answer usefully (network, TLS, 5xx, auth)."""


class QueryError(PrometheusError):
    """Prometheus refused the query (bad_data, execution...): `error` is its own text."""

    def __init__(self, message: str, *, query: str, error: str, error_type: str) -> None:
        super().__init__(message)
        self.query = query
        self.error = error
        self.error_type = error_type


def shorten(query: str, limit: int = _MAX_QUERY_IN_MESSAGE) -> str:
    return query if len(query) <= limit else query[: limit - 1] + "…"


def _redact(url: str) -> str:
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _TlsContext:
    """An SSL context rebuilt when one of its files changes (rotated certificates)."""

    def __init__(
        self,
        ca_file: str | None,
        cert_file: str | None,
        key_file: str | None,
        insecure_skip_verify: bool,
    ) -> None:
        self._ca_file = ca_file
        self._cert_file = cert_file
        self._key_file = key_file
        self._insecure = insecure_skip_verify
        self._stamp: tuple[float, ...] | None = None
        self._context: ssl.SSLContext | None = None

    def _files(self) -> list[str]:
        return [f for f in (self._ca_file, self._cert_file, self._key_file) if f]

    def get(self) -> ssl.SSLContext:
        stamp = tuple(os.stat(f).st_mtime for f in self._files())
        if self._context is None or stamp != self._stamp:
            context = ssl.create_default_context(cafile=self._ca_file)
            if self._insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self._cert_file:
                context.load_cert_chain(self._cert_file, self._key_file)
            self._context, self._stamp = context, stamp
        return self._context


class PrometheusClient:
    def __init__(
        self,
        url: str,
        *,
        bearer_token_file: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        insecure_skip_verify: bool = False,
        timeout: float = 2.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Prometheus URL must be http(s)://host[:port][/path], not {url!r}")
        self.url = url.rstrip("/")
        self.display_url = _redact(self.url)
        self._token_file = bearer_token_file
        self._timeout = timeout
        self._tls = (
            _TlsContext(ca_file, cert_file, key_file, insecure_skip_verify)
            if parts.scheme == "https"
            else None
        )

    def query(self, promql: str) -> list[Sample]:
        """Run an instant query; a scalar result is one Sample without labels."""
        body = self._call(promql)
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusUnavailable(f"Prometheus at {self.display_url}: answer without data")
        return _samples(data, promql)

    # -- HTTP -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "modelship-operator"}
        if self._token_file:
            try:
                with open(self._token_file, encoding="utf-8") as file:
                    token = file.read().strip()
            except OSError as exc:
                raise PrometheusUnavailable(
                    f"cannot read the Prometheus bearer token file {self._token_file}:"
                    f" {exc.strerror or exc}"
                ) from None
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _request(self, promql: str) -> urllib.request.Request:
        endpoint = self.url + QUERY_PATH
        encoded = urllib.parse.urlencode({"query": promql})
        headers = self._headers()
        if len(encoded) <= MAX_GET_QUERY:
            return urllib.request.Request(f"{endpoint}?{encoded}", headers=headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urllib.request.Request(endpoint, data=encoded.encode(), headers=headers)

    def _opener(self) -> urllib.request.OpenerDirector:
        # No proxies from the environment: Prometheus is reached directly inside the cluster.
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self._tls:
            try:
                context = self._tls.get()
            except (OSError, ssl.SSLError) as exc:
                raise PrometheusUnavailable(
                    f"cannot load the TLS files for Prometheus at {self.display_url}: {exc}"
                ) from None
            handlers.append(urllib.request.HTTPSHandler(context=context))
        return urllib.request.build_opener(*handlers)

    def _call(self, promql: str) -> dict[str, Any]:
        request = self._request(promql)
        opener = self._opener()
        where = f"Prometheus at {self.display_url}"
        try:
            with opener.open(request, timeout=self._timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise PrometheusUnavailable(f"{where}: {_reason(exc.reason)}") from None
        except TimeoutError:
            raise PrometheusUnavailable(f"{where}: no answer in {self._timeout:g}s") from None
        except (OSError, HTTPException) as exc:
            raise PrometheusUnavailable(f"{where}: {_reason(exc)}") from None
        return self._parse(status, raw, promql, where)

    def _parse(self, status: int, raw: bytes, promql: str, where: str) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            snippet = raw[:200].decode(errors="replace").strip()
            raise PrometheusUnavailable(
                f"{where}: HTTP {status}, not a Prometheus API answer"
                + (f": {snippet}" if snippet else "")
            )
        if status == 200 and body.get("status") == "success":
            return body
        error = str(body.get("error") or f"HTTP {status}")
        error_type = str(body.get("errorType") or "")
        if status in (400, 422) or error_type in ("bad_data", "execution"):
            raise QueryError(
                f"Prometheus refused the query ({error_type or status}): {error};"
                f" query: {shorten(promql)}",
                query=promql,
                error=error,
                error_type=error_type,
            )
        if status in (401, 403):
            raise PrometheusUnavailable(
                f"{where}: HTTP {status} ({error}); check the bearer token or client certificate"
            )
        raise PrometheusUnavailable(
            f"{where}: HTTP {status}" + (f" ({error_type})" if error_type else "") + f": {error}"
        )


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {reason.verify_message}"
    if isinstance(reason, ssl.SSLError):
        return f"TLS: {reason.reason or reason}"
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved ({reason.strerror})"
    if isinstance(reason, TimeoutError):
        return "no answer in time"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def _value(pair: Any) -> float | None:
    """A [timestamp, "value"] pair's value; None when malformed, NaN or infinite."""
    try:
        value = float(pair[1])
    except (TypeError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) else None


def _samples(data: dict[str, Any], promql: str) -> list[Sample]:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        value = _value(result)
        return [] if value is None else [Sample({}, value)]
    if kind == "vector" and isinstance(result, list):
        samples = []
        for item in result:
            value = _value(item.get("value")) if isinstance(item, dict) else None
            if value is not None:
                labels = item.get("metric") or {}
                samples.append(Sample({str(k): str(v) for k, v in labels.items()}, value))
        return samples
    raise QueryError(
        f"the query returns a {kind}, not an instant vector or a scalar; query: {shorten(promql)}",
        query=promql,
        error=f"result type {kind}",
        error_type="bad_data",
    )
