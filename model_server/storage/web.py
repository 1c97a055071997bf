"""http(s)://: one file (often an archive) or a folder served as an HTML index (python -m
http.server, nginx autoindex, Apache), walked recursively."""

from __future__ import annotations

import base64
import binascii
import http.client
import urllib.error
import urllib.request
import urllib.response
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from .errors import SourceError
from .limits import Meter
from .paths import safe_join
from .transfer import save
from .uri import Location

# The longest a single socket read may block; the meter's deadline and rate bound the whole.
TIMEOUT_SECONDS = 60
MAX_FILES = 10_000  # an index that links to itself under new names must not run forever
MAX_INDEX_BYTES = 8 << 20  # a directory listing is small; an endless one must not fill memory
USER_AGENT = "modelship-fetch"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def index_entries(base_url: str, html: str) -> list[str]:
    """Links in a directory index that lie below `base_url`, as relative names ("a", "b/"):
    parent links, sort links (`?C=N;O=D`) and other sites are left out."""
    parser = _Links()
    parser.feed(html)
    base = urlsplit(base_url)
    names: list[str] = []
    for href in parser.hrefs:
        url = urlsplit(urldefrag(urljoin(base_url, href)).url)
        if url.query or (url.scheme, url.netloc) != (base.scheme, base.netloc):
            continue
        if not url.path.startswith(base.path) or url.path == base.path:
            continue
        name = url.path[len(base.path) :]
        if name not in names:
            names.append(name)
    return names


def download(location: Location, target: Path, meter: Meter) -> None:
    with _open(location.url, meter) as response:
        final_url = response.geturl()
        if _is_index(final_url, response.headers.get_content_type()):
            html = _read_index(response, meter)
            _walk(final_url, html, target, meter, seen={final_url}, count=[0])
            return
        name = unquote(urlsplit(final_url).path.rstrip("/").rsplit("/", 1)[-1]) or "download"
        _save(response, safe_join(target, name), meter)


def _walk(
    url: str, html: str, folder: Path, meter: Meter, seen: set[str], count: list[int]
) -> None:
    for name in index_entries(url, html):
        child = urljoin(url, name)
        if child in seen:
            continue
        seen.add(child)
        path = safe_join(folder, unquote(name))
        with _open(child, meter) as response:
            if name.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
                html = _read_index(response, meter)
                _walk(response.geturl(), html, path, meter, seen, count)
                continue
            count[0] += 1
            if count[0] > MAX_FILES:
                raise SourceError(f"the index lists more than {MAX_FILES} files")
            path.parent.mkdir(parents=True, exist_ok=True)
            _save(response, path, meter)


def _read_index(response: urllib.response.addinfourl, meter: Meter) -> str:
    """The HTML of a directory listing, read under the meter and a size cap."""
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.read1(1 << 16):
            size += len(chunk)
            if size > MAX_INDEX_BYTES:
                path = urlsplit(response.geturl()).path
                raise SourceError(f"the index at {path} is larger than {MAX_INDEX_BYTES} bytes")
            chunks.append(chunk)
            meter.check_time()
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise SourceError(f"the index broke off: {type(e).__name__}") from e
    charset = response.headers.get_content_charset() or "utf-8"
    try:
        return b"".join(chunks).decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return b"".join(chunks).decode("utf-8", "replace")


def _is_index(url: str, content_type: str) -> bool:
    return content_type == "text/html" and urlsplit(url).path.endswith("/")


def _open(url: str, meter: Meter) -> urllib.response.addinfourl:
    meter.check_time()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    timeout = max(0.1, min(TIMEOUT_SECONDS, meter.remaining()))
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as e:
        raise SourceError(_describe_status(e.code, urlsplit(url).path)) from e
    except urllib.error.URLError as e:
        raise SourceError(f"cannot connect: {e.reason}") from e
    except (TimeoutError, ConnectionError) as e:
        raise SourceError(f"cannot connect: {type(e).__name__}") from e


def _describe_status(code: int, path: str) -> str:
    if code in (401, 403):
        return f"access denied (HTTP {code}) for {path}"
    if code == 404:
        return f"not found (HTTP 404): {path}"
    return f"HTTP {code} for {path}"


def _save(response: urllib.response.addinfourl, path: Path, meter: Meter) -> None:
    """`read1` returns what has arrived, so the meter sees a trickle as it trickles."""
    try:
        save(
            response.read1,
            path,
            meter,
            length=_content_length(response),
            md5=_content_md5(response),
        )
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise SourceError(f"the download of {path.name} broke off: {type(e).__name__}") from e


def _content_length(response: urllib.response.addinfourl) -> int | None:
    """The announced length; None for chunked responses, whose framing http.client checks."""
    if response.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return None
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise SourceError(f"the server sent an invalid Content-Length: {raw[:40]!r}")
    return int(raw)


def _content_md5(response: urllib.response.addinfourl) -> str | None:
    raw = response.headers.get("Content-MD5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise SourceError(f"the server sent an invalid Content-MD5: {raw[:40]!r}")
    return digest.hex()
