"""A small HTTP/1.1 server that misbehaves on purpose, one behaviour per path: it cuts bodies
short, lies about lengths and checksums, trickles, and never ends. It runs in a thread of the
test process and answers `modelship fetch` running as a separate process."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Behaviour = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Hostile:
    url: str
    routes: dict[str, Behaviour] = field(default_factory=dict)

    def route(self, path: str, behaviour: Behaviour) -> str:
        self.routes[path] = behaviour
        return f"{self.url}{path}"


def _head(handler: BaseHTTPRequestHandler, headers: dict[str, str]) -> None:
    handler.send_response(200)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.flush()


def cut_short(body: bytes, sent: int) -> Behaviour:
    """Announces the whole length, sends `sent` bytes, closes."""

    def behave(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, {"Content-Length": str(len(body)), "Connection": "close"})
        handler.wfile.write(body[:sent])
        handler.close_connection = True

    return behave


def honest(body: bytes, extra: dict[str, str] | None = None) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, {"Content-Length": str(len(body)), **(extra or {})})
        handler.wfile.write(body)

    return behave


def wrong_md5(body: bytes) -> Behaviour:
    """The right length, a Content-MD5 for other bytes."""
    other = base64.b64encode(hashlib.md5(body + b"!").digest()).decode()
    return honest(body, {"Content-MD5": other})


def chunked_cut(body: bytes) -> Behaviour:
    """Chunked encoding that stops mid-chunk, without the final zero-length chunk."""

    def behave(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, {"Transfer-Encoding": "chunked", "Connection": "close"})
        handler.wfile.write(f"{len(body):x}\r\n".encode() + body[: len(body) // 2])
        handler.close_connection = True

    return behave


def trickle(
    piece: bytes, every: float, length: int | None = None, content_type: str | None = None
) -> Behaviour:
    """Sends `piece` every `every` seconds until the client goes away."""

    def behave(handler: BaseHTTPRequestHandler) -> None:
        headers = {"Connection": "close"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        _head(handler, headers)
        handler.close_connection = True
        try:
            while True:
                handler.wfile.write(piece)
                handler.wfile.flush()
                time.sleep(every)
        except OSError:
            return  # the client gave up, as it should

    return behave


@contextmanager
def hostile_server() -> Iterator[Hostile]:
    hostile = Hostile("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            behaviour = hostile.routes.get(self.path)
            if behaviour is None:
                self.send_error(404)
                return
            behaviour(self)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    hostile.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
