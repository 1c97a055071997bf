"""HTTP/1.1 conformance of a real server process, byte for byte over raw sockets.

The cases follow the kinds a maintained parser's suite covers (llhttp's request tests, h11's and
uvicorn's): request smuggling through Content-Length and Transfer-Encoding, chunked edge cases,
versions, header syntax, pipelining and connection handling. Each case is a byte stream and the
statuses it must get, in order; a request hidden in a refused one must never be answered.
"""

from __future__ import annotations

import re
import socket

import pytest
from server_process import ServerProcess

PREDICT = b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
BODY = b'{"instances": [1.0]}'
SMUGGLED = b"GET /v1/models/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"  # 404 if ever served
CLOSE = b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
KEEP = b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n"


def _chunked(*chunks: bytes, tail: bytes = b"0\r\n\r\n") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + tail


CASES: dict[str, tuple[bytes, list[int]]] = {
    # -- smuggling: two framings, or one that parsers read differently ------------------------
    "content-length and chunked": (
        PREDICT + b"Content-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        [400],
    ),
    "chunked and content-length": (
        PREDICT + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" + SMUGGLED,
        [400],
    ),
    "two different content-lengths": (
        PREDICT + b"Content-Length: 20\r\nContent-Length: 68\r\n\r\n" + BODY + SMUGGLED,
        [400],
    ),
    "content-length with a sign": (PREDICT + b"Content-Length: +20\r\n\r\n" + BODY, [400]),
    "negative content-length": (PREDICT + b"Content-Length: -1\r\n\r\n" + BODY, [400]),
    "content-length with letters": (PREDICT + b"Content-Length: 20x\r\n\r\n" + BODY, [400]),
    "content-length overflowing 64 bits": (
        PREDICT + b"Content-Length: 184467440737095516160\r\n\r\n" + BODY,
        [400],
    ),
    "chunked not the last coding": (
        PREDICT + b"Transfer-Encoding: chunked, identity\r\n\r\n" + _chunked(BODY) + SMUGGLED,
        [400],
    ),
    "unknown transfer coding": (
        PREDICT + b"Transfer-Encoding: xchunked\r\n\r\n" + _chunked(BODY) + SMUGGLED,
        [400],
    ),
    "space before the colon": (
        PREDICT + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
        [400],
    ),
    "folded header line": (
        PREDICT + b"Transfer-Encoding: identity\r\n chunked\r\n\r\n" + _chunked(BODY) + SMUGGLED,
        [400],
    ),
    "body longer than content-length": (
        PREDICT + b"Content-Length: 20\r\n\r\n" + BODY + b"GARBAGE\r\n\r\n",
        [200, 400],
    ),
    # -- chunked bodies ------------------------------------------------------------------------
    "chunked body in pieces": (
        PREDICT + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(BODY[:7], BODY[7:]) + CLOSE,
        [200, 200],
    ),
    "chunk extensions ignored": (
        PREDICT
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
        + CLOSE,
        [200, 200],
    ),
    "trailer fields accepted": (
        PREDICT
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + _chunked(BODY, tail=b"0\r\nX-Trailer: 1\r\n\r\n")
        + CLOSE,
        [200, 200],
    ),
    "chunk size overflowing": (
        PREDICT + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nab\r\n0\r\n\r\n",
        [400],
    ),
    "chunk size not hex": (
        PREDICT + b"Transfer-Encoding: chunked\r\n\r\n1g\r\na\r\n0\r\n\r\n" + SMUGGLED,
        [400],
    ),
    "chunk longer than its size": (
        PREDICT + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n" + SMUGGLED,
        [400],
    ),
    "chunked with bare LF": (
        PREDICT + b"Transfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n" + SMUGGLED,
        [400],
    ),
    # -- versions and request lines --------------------------------------------------------------
    "HTTP/2.0 in HTTP/1 syntax": (b"GET /v2 HTTP/2.0\r\nHost: x\r\n\r\n", [505]),
    "HTTP/0.9 request": (b"GET /v2\r\n\r\n", [505]),
    "version not digits": (b"GET /v2 HTTP/A.B\r\nHost: x\r\n\r\n", [400]),
    "two-digit minor version": (b"GET /v2 HTTP/1.10\r\nHost: x\r\n\r\n", [400]),
    "space in the target": (b"GET /v2 x HTTP/1.1\r\nHost: x\r\n\r\n", [400]),
    "bad method characters": (b"G@T /v2 HTTP/1.1\r\nHost: x\r\n\r\n", [400]),
    "CONNECT": (b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n" + SMUGGLED, [400]),
    "bare LF line ends": (b"GET /v2 HTTP/1.1\nHost: x\n\n", [400]),
    "bare CR": (b"GET /v2 HTTP/1.1\rHost: x\r\n\r\n", [400]),
    "absolute-form target": (
        b"GET http://x/v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        [200],
    ),
    "empty lines before a request": (b"\r\n\r\n" + CLOSE, [200]),
    # -- headers ---------------------------------------------------------------------------------
    "space in a header name": (b"GET /v2 HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", [400]),
    "NUL in a header value": (b"GET /v2 HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", [400]),
    "header line without colon": (b"GET /v2 HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", [400]),
    "100-continue, then the answer": (
        PREDICT + b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: 20\r\n\r\n" + BODY,
        [100, 200],
    ),
    "100-continue on a body over the limit": (
        PREDICT + b"Expect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
        [413],
    ),
    "unsupported expectation": (
        PREDICT + b"Expect: teapot\r\nContent-Length: 20\r\n\r\n" + BODY,
        [417],
    ),
    # -- connections -----------------------------------------------------------------------------
    "HTTP/1.0 closes by default": (b"GET /v2 HTTP/1.0\r\n\r\n" + SMUGGLED, [200]),
    "HTTP/1.0 keep-alive": (
        b"GET /v2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + CLOSE,
        [200, 200],
    ),
    "pipelined, then malformed": (
        PREDICT
        + b"Content-Length: 20\r\n\r\n"
        + BODY
        + CLOSE.replace(b"close", b"x")
        + b"BAD\r\n\r\n",
        [200, 200, 400],
    ),
    "stray bytes after connection close": (CLOSE + b"\x00\x01garbage" + SMUGGLED, [200]),
    "h2c upgrade ignored": (
        b"GET /v2 HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + CLOSE,
        [200, 200],
    ),
    "h2 prior knowledge preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400, 505]),
    "websocket upgrade ignored": (
        b"GET /v2 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + CLOSE,
        [200, 200],
    ),
    "HEAD then GET": (
        b"HEAD /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n" + CLOSE,
        [200, 200],
    ),
}


def _exchange(server: ServerProcess, data: bytes) -> bytes:
    """Send data, read until the server closes (every case ends in a close)."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=20) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("case", list(CASES))
def test_http11_conformance(reference_server: ServerProcess, case: str) -> None:
    data, expected = CASES[case]
    received = _exchange(reference_server, data)
    statuses = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]
    heads = re.findall(rb"HTTP/1\.1 [2-5].*?\r\n\r\n", received, re.DOTALL)
    if case == "h2 prior knowledge preface":
        assert len(statuses) == 1
        assert statuses[0] in expected, received[:300]
    else:
        assert statuses == expected, received[:600]
    assert b"smuggled" not in received
    assert b"Traceback" not in received
    assert all(re.search(rb"\r\ndate: ", head, re.IGNORECASE) for head in heads)
    if case == "HEAD then GET":  # the GET's headers, Content-Length included, and no body
        head_length = re.search(rb"content-length: (\d+)", heads[0], re.I)
        get_length = re.search(rb"content-length: (\d+)", heads[1], re.I)
        assert head_length
        assert get_length
        assert head_length.group(1) == get_length.group(1) != b"0"
        assert received.startswith(heads[0] + b"HTTP/1.1 200")
    if statuses and statuses[-1] >= 400:
        assert b"connection: close" in heads[-1].lower()
