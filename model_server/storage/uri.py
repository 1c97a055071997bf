"""Parsing a storageUri into the location a backend needs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import FetchError

SCHEMES = ("s3", "gs", "http", "https", "file")


@dataclass(frozen=True)
class Location:
    """Where a model lives. For s3/gs `bucket` and `prefix` (no leading or trailing slash); for
    http(s) `url`; for file `path`."""

    scheme: str
    raw: str
    bucket: str = ""
    prefix: str = ""
    url: str = ""
    path: str = ""

    @property
    def display(self) -> str:
        """The URI as it may be shown to users: no query string (signed URLs) or user:password."""
        return display_uri(self.raw)


def display_uri(raw: str) -> str:
    parts = urlsplit(raw)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_uri(raw: str) -> Location:
    parts = urlsplit(raw.strip())
    scheme = parts.scheme.lower()
    shown = display_uri(raw)
    if scheme not in SCHEMES:
        supported = ", ".join(f"{s}://" for s in SCHEMES)
        raise FetchError(f"cannot read {shown or repr(raw)}: unsupported scheme (use {supported})")
    if scheme in ("s3", "gs"):
        if not parts.netloc:
            raise FetchError(
                f"cannot read {shown}: no bucket name (expected {scheme}://BUCKET/PATH)"
            )
        return Location(scheme, raw, bucket=parts.netloc, prefix=parts.path.strip("/"))
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise FetchError(f"cannot read {shown}: no host name")
        return Location(scheme, raw, url=raw.strip())
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"cannot read {shown}: file:// URIs name a local path (file:///PATH)")
    if not parts.path:
        raise FetchError(f"cannot read {shown}: no path")
    return Location(scheme, raw, path=unquote(parts.path))
