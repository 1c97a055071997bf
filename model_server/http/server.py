"""HTTP/1.1 on asyncio + httptools: keep-alive, pipelining, body limits, slow-client timeouts.

A general framework would cost more per request than the model does on small inputs; the REST
adapters need only method, path, headers and body in, and status, headers and body out.

Timeouts cost no timer per request: each connection keeps a deadline, and one sweeper per
server checks them (asyncio.timeout and call_later per request took a tenth of the event loop's
time under load).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import cast

import httptools
import orjson

log = logging.getLogger(__name__)

MAX_PIPELINED = 64  # requests parsed ahead on one connection before reading pauses


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


def json_error(status: int, message: str) -> Response:
    return Response(status, orjson.dumps({"error": message}))


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 64 << 20
    max_header_bytes: int = 64 << 10
    read_timeout: float = 30.0  # a request must arrive whole within this
    idle_timeout: float = 75.0  # keep-alive connections idle longer are closed
    request_timeout: float | None = None  # handler time limit (--rest_api_timeout_in_ms)


_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS[499] = "Client Closed Request"


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = bytearray()
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_len = 0
        self._pending: collections.deque[tuple[Request, bool]] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._deadline = 0.0  # when reading a request, or waiting idle for one, times out
        self._handle_deadline = 0.0
        self._handling = False  # the worker is awaiting a handler with a deadline
        self._timed_out = False  # the sweeper cancelled that handler
        self._closing = False
        self._paused = False
        self._in_request = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        self._deadline = self._loop.time() + self._limits.idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.connections.discard(self)
        if self._worker and not self._worker.done():
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._closing:
                self._fail(400, f"malformed HTTP request: {exc}")

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_request = True
        self._url.clear()
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_len = 0
        self._deadline = self._loop.time() + self._limits.read_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_bytes:
            self._fail(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._limits.max_header_bytes:
            self._fail(431, "request headers too large")
            return
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limits.max_body_bytes:
            self._fail(413, f"request body exceeds {self._limits.max_body_bytes} bytes")

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            self._fail(413, f"request body exceeds {self._limits.max_body_bytes} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        self._in_request = False
        parsed = httptools.parse_url(bytes(self._url))
        request = Request(
            method=self._parser.get_method().decode("latin-1"),
            path=(parsed.path or b"/").decode("latin-1"),
            query=(parsed.query or b"").decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
        )
        self._pending.append((request, self._parser.should_keep_alive()))
        if len(self._pending) >= MAX_PIPELINED and self._transport and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        if self._worker is None or self._worker.done():
            self._worker = self._loop.create_task(self._serve_pending())

    # -- handling -----------------------------------------------------------------------------

    async def _serve_pending(self) -> None:
        timeout = self._limits.request_timeout
        while self._pending and not self._closing:
            request, keep_alive = self._pending.popleft()
            if timeout:
                self._handle_deadline = self._loop.time() + timeout
                self._handling = True
            try:
                response = await self._server.dispatch(request)
            except asyncio.CancelledError:
                if not self._timed_out or self._closing:
                    raise
                self._timed_out = False
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                response = json_error(504, "request timed out")
            self._handling = False
            if self._closing:
                return
            keep_alive = keep_alive and not self._server.draining
            self._write(response, keep_alive)
            if not keep_alive:
                self._close()
                return
            if self._paused and len(self._pending) < MAX_PIPELINED // 2 and self._transport:
                self._paused = False
                self._transport.resume_reading()
        if not self._closing:
            self._deadline = self._loop.time() + self._limits.idle_timeout

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        reason = _REASONS.get(response.status, "Unknown")
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"content-type: {response.content_type}",
            f"content-length: {len(response.body)}",
        ]
        head.extend(f"{name}: {value}" for name, value in response.headers)
        if not keep_alive:
            head.append("connection: close")
        self._transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)

    def _fail(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or accepted, then hang up."""
        if self._closing:
            return
        self._write(json_error(status, message), keep_alive=False)
        self._close()

    def _close(self) -> None:
        self._closing = True
        if self._transport:
            self._transport.close()

    def _idle(self) -> bool:
        """No request waiting or being handled."""
        return not self._pending and (self._worker is None or self._worker.done())

    def close_if_idle(self) -> None:
        if self._idle():
            self._close()

    def check_deadline(self, now: float) -> None:
        """Called by the sweeper: end whatever phase has run past its deadline."""
        if self._closing:
            return
        worker = self._worker
        if self._handling and now >= self._handle_deadline and not self._timed_out and worker:
            self._timed_out = True
            worker.cancel()
        if now < self._deadline:
            return
        if self._in_request:
            self._fail(408, "request not received in time")
        elif self._idle():
            self._close()  # idle keep-alive connection


class HttpServer:
    def __init__(self, handler: Handler, limits: Limits | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.connections: set[_Connection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def _sweep_interval(self) -> float:
        # Timeouts fire within about 5% of their length, and at least every second.
        shortest = min(
            t
            for t in (
                self.limits.read_timeout,
                self.limits.idle_timeout,
                self.limits.request_timeout,
            )
            if t
        )
        return min(1.0, max(0.005, shortest / 20))

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._sweep_interval()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self.connections):
                conn.check_deadline(now)

    async def dispatch(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error for %s %s", request.method, request.path)
            return json_error(500, "internal error")

    async def start(self, host: str, port: int, reuse_port: bool = False) -> int:
        """Listen; with reuse_port, sibling worker processes share the port (SO_REUSEPORT)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        self._sweeper = loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        self.draining = True
        if self._server:
            self._server.close()

    async def close(self) -> None:
        self.stop_accepting()
        for conn in list(self.connections):
            conn.close_if_idle()
        if self._server:
            await self._server.wait_closed()
        if self._sweeper:
            self._sweeper.cancel()
