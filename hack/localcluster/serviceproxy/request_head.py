"""Where a proxied request goes, read from its head: the absolute-form target of a forward
proxy (`GET http://host:port/path`), a CONNECT authority (`CONNECT host:port`), or, for a
client that talks to the proxy as if it were the server, the Host header."""

from __future__ import annotations

from dataclasses import dataclass

from .hosts import split_authority

HEAD_END = b"\r\n\r\n"
HTTP_PORT = 80
CHUNKED = -1


@dataclass(frozen=True)
class Destination:
    host: str
    port: int
    # CONNECT: answer 200 and tunnel; otherwise the head itself goes on to the endpoint.
    tunnel: bool
    # Where the request ends, so the next one on the connection can be read: the body's
    # length (CHUNKED: chunked framing). After an Upgrade the connection is raw bytes.
    body_length: int = 0
    upgrade: bool = False


@dataclass(frozen=True)
class BadHead:
    status: int
    reason: str


def parse_head(head: bytes) -> Destination | BadHead:
    """`head` is the request line and headers, up to and including the blank line."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return BadHead(400, f"not an HTTP/1 request line: {lines[0][:100]!r}")
    method, target, _ = parts
    if method == "CONNECT":
        authority = split_authority(target, 0)
        if authority is None or authority[1] == 0:
            return BadHead(400, f"CONNECT needs host:port, got {target[:100]!r}")
        return Destination(authority[0], authority[1], tunnel=True)
    if target.lower().startswith("http://"):
        authority_text = target[len("http://") :].split("/", 1)[0].split("?", 1)[0]
        authority_text = authority_text.rpartition("@")[2]  # no userinfo in a Service URL
    elif target.startswith("/"):
        host_header = _header(lines[1:], "host")
        if host_header is None:
            return BadHead(400, "no absolute URL and no Host header: which Service?")
        authority_text = host_header
    else:
        return BadHead(400, f"only http:// targets are proxied (or CONNECT), got {target[:100]!r}")
    authority = split_authority(authority_text, HTTP_PORT)
    if authority is None:
        return BadHead(400, f"bad host in {authority_text[:100]!r}")
    encoding = (_header(lines[1:], "transfer-encoding") or "").lower()
    length_text = _header(lines[1:], "content-length") or "0"
    if "chunked" in encoding:
        length = CHUNKED  # it wins over Content-Length (RFC 9112 6.3)
    elif length_text.isdigit():
        length = int(length_text)
    else:
        return BadHead(400, f"bad Content-Length {length_text[:40]!r}")
    upgrade = "upgrade" in (_header(lines[1:], "connection") or "").lower()
    return Destination(authority[0], authority[1], False, length, upgrade)


def _header(lines: list[str], name: str) -> str | None:
    for line in lines:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name:
            return value.strip()
    return None
