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
import email.utils
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import cast

import httptools
import orjson

from ..listen import listen

log = logging.getLogger(__name__)

MAX_PIPELINED = 64  # requests parsed ahead on one connection before reading pauses
MAX_PIPELINED_BYTES = 1 << 20  # or request bodies parsed ahead, together


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
    # Answers a client has not read yet, per connection: above this, its requests stop being
    # read (and so handled) until it reads down to a quarter of it.
    write_buffer_high: int = 256 << 10


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
        self._head_bytes = 0  # bytes fed to the parser since the current head began
        self._reading_head = True  # between requests or inside a request line / headers
        self._body: list[bytes] = []
        self._body_len = 0
        self._pending: collections.deque[_Answer] = collections.deque()
        self._pending_bytes = 0  # body bytes of the requests in _pending
        self._worker: asyncio.Task[None] | None = None
        self._deadline = 0.0  # when reading a request, or waiting idle for one, times out
        self._handle_deadline = 0.0
        self._handling = False  # the worker is awaiting a handler with a deadline
        self._timed_out = False  # the sweeper cancelled that handler
        self._dispatching = False  # the worker is awaiting a handler
        self._abandoned = False  # shutdown cancelled that handler
        self._closing = False  # the transport is closed or closing: nothing more is written
        self._done_reading = False  # no further request is parsed (refused, or last one seen)
        self._read_pauses: set[str] = set()
        self._writable = asyncio.Event()
        self._writable.set()
        self._write_deadline = 0.0  # a client reading none of its answers by then is dropped
        self._continue_owed = False  # a 100 Continue waits for the answers before it
        self._in_request = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(
            high=self._limits.write_buffer_high, low=self._limits.write_buffer_high // 4
        )
        self._server.connections.add(self)
        self._deadline = self._loop.time() + self._limits.idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._writable.set()
        self._server.connections.discard(self)
        if self._worker and not self._worker.done():
            self._worker.cancel()

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        self._writable.clear()
        self._write_deadline = self._loop.time() + self._limits.idle_timeout
        self._pause_reading("write")

    def resume_writing(self) -> None:
        self._writable.set()
        self._resume_reading("write")

    def data_received(self, data: bytes) -> None:
        while data and not self._done_reading:
            if self._reading_head:
                # Feed the head in slices no longer than the room left under the limit, so a
                # huge header is refused before the parser has buffered more than the limit.
                room = self._limits.max_header_bytes - self._head_bytes + 1
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
                if not self._feed(piece):
                    return
                if self._reading_head and self._head_bytes > self._limits.max_header_bytes:
                    self._refuse(431, "request headers too large")
                    return
            else:
                self._feed(data)
                return

    def _feed(self, data: bytes) -> bool:
        """Parse data; False when the rest of the stream is not to be parsed."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The upgrade is ignored (RFC 9110 7.8 allows it): what follows the request is
            # parsed as HTTP/1.1 again, by a fresh parser since this one stops at an upgrade.
            self._parser = httptools.HttpRequestParser(self)
            self._reading_head = True
            self._head_bytes = 0
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            self.data_received(data[offset:])
            return False
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")
            return False
        return not self._done_reading

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_request = True
        self._reading_head = True
        self._head_bytes = 0
        self._url.clear()
        self._headers = {}
        self._body = []
        self._body_len = 0
        self._deadline = self._loop.time() + self._limits.read_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url  # bounded by the head's limit (data_received)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._done_reading:
            return
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._done_reading:
            return
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):  # HTTP/0.9's bare "GET /" and HTTP/2.0 text alike
            self._refuse(505, f"HTTP version not supported: {version}")
            return
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limits.max_body_bytes:
            self._refuse(413, f"request body exceeds {self._limits.max_body_bytes} bytes")
            return
        if "upgrade" in self._headers and _is_upgrade(self._headers) and _has_body(self._headers):
            # The parser stops at an upgrade request's head and would read its body as the
            # next request.
            self._refuse(400, "an Upgrade request with a body is not supported")
            return
        expect = self._headers.get("expect")
        if expect is not None and version == "1.1":
            if expect.lower() != "100-continue":
                self._refuse(417, f"unsupported expectation: {expect}")
            elif self._idle():
                self._write_continue()
            else:
                self._continue_owed = True  # sent once the answers before it are out

    def on_body(self, body: bytes) -> None:
        if self._done_reading:
            return
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            self._refuse(413, f"request body exceeds {self._limits.max_body_bytes} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._done_reading:
            return
        self._in_request = False
        self._reading_head = True
        self._head_bytes = 0
        self._continue_owed = False
        url = bytes(self._url)
        text = url.decode("latin-1")
        if (
            text[:1] == "/"
            and url.isascii()
            and text.isprintable()
            and " " not in text
            and "?" not in text
            and "#" not in text
        ):
            # Origin form of visible ASCII without a query: parse_url would return it as is.
            path, query = text, ""
        else:
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                # e.g. CONNECT's authority form: this server has only origin-form paths.
                self._refuse(400, "invalid request target")
                return
            path = (parsed.path or b"/").decode("latin-1")
            query = (parsed.query or b"").decode("latin-1")
        method = self._parser.get_method().decode("latin-1")
        head_only = method == "HEAD"
        body = self._body
        request = Request(
            # HEAD is GET without the body (RFC 9110 9.3.2): handlers need to know only GET.
            method="GET" if head_only else method,
            path=path,
            query=query,
            headers=self._headers,
            body=body[0] if len(body) == 1 else b"".join(body),
        )
        keep_alive = self._parser.should_keep_alive()
        if not keep_alive:
            # Bytes after a `Connection: close` request are not requests: answer it, ignore them.
            self._stop_reading()
        self._enqueue(_Answer(request, keep_alive, head_only=head_only))
        if len(self._pending) >= MAX_PIPELINED or self._pending_bytes >= MAX_PIPELINED_BYTES:
            self._pause_reading("pipeline")

    # -- reading ------------------------------------------------------------------------------

    def _pause_reading(self, reason: str) -> None:
        if not self._read_pauses and self._transport and not self._closing:
            self._transport.pause_reading()
        self._read_pauses.add(reason)

    def _resume_reading(self, reason: str) -> None:
        if reason not in self._read_pauses:
            return
        self._read_pauses.discard(reason)
        if not self._read_pauses and self._transport and not self._closing:
            self._transport.resume_reading()

    def _stop_reading(self) -> None:
        self._done_reading = True
        self._in_request = False
        self._pause_reading("done")

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or accepted after those before it, then close."""
        if self._done_reading:
            return
        self._stop_reading()
        self._enqueue(_Answer(None, False, json_error(status, message)))

    # -- handling -----------------------------------------------------------------------------

    def _enqueue(self, answer: _Answer) -> None:
        self._pending.append(answer)
        self._pending_bytes += _body_size(answer)
        if self._worker is None or self._worker.done():
            self._worker = self._loop.create_task(self._serve_pending())

    async def _serve_pending(self) -> None:
        while self._pending and not self._closing:
            if not self._writable.is_set():
                await self._writable.wait()
                continue
            answer = self._pending.popleft()
            self._pending_bytes -= _body_size(answer)
            response = answer.response or await self._handle(answer.request)
            if self._closing:
                return
            keep_alive = answer.keep_alive and not self._server.draining
            self._write(response, keep_alive, head_only=answer.head_only)
            if not keep_alive:
                self._close()
                return
            if (
                len(self._pending) < MAX_PIPELINED // 2
                and self._pending_bytes < MAX_PIPELINED_BYTES // 2
            ):
                self._resume_reading("pipeline")
        if self._closing:
            return
        if self._continue_owed:
            self._continue_owed = False
            self._write_continue()
        if not self._in_request:
            self._deadline = self._loop.time() + self._limits.idle_timeout

    async def _handle(self, request: Request | None) -> Response:
        assert request is not None
        timeout = self._limits.request_timeout
        if timeout:
            self._handle_deadline = self._loop.time() + timeout
            self._handling = True
        self._dispatching = True
        try:
            return await self._server.dispatch(request)
        except asyncio.CancelledError:
            if not (self._timed_out or self._abandoned) or self._closing:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if self._abandoned:
                return json_error(503, "server shutting down")
            self._timed_out = False
            return json_error(504, "request timed out")
        finally:
            self._handling = False
            self._dispatching = False

    def _write_continue(self) -> None:
        if self._transport and not self._closing:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _write(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        body = response.body
        if response.status == 200 and not response.headers and keep_alive:
            # The common answer: one format call, no list.
            data = (
                f"HTTP/1.1 200 OK\r\ndate: {self._server.date()}\r\n"
                f"content-type: {response.content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
        else:
            reason = _REASONS.get(response.status, "Unknown")
            head = [
                f"HTTP/1.1 {response.status} {reason}",
                f"date: {self._server.date()}",
                f"content-type: {response.content_type}",
                f"content-length: {len(body)}",
            ]
            head.extend(f"{name}: {value}" for name, value in response.headers)
            if not keep_alive:
                head.append("connection: close")
            data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        # A HEAD answer has the headers a GET would have, Content-Length included, no body.
        if head_only:
            self._transport.write(data)
        elif len(body) > 1 << 16:
            self._transport.writelines((data, body))  # no copy of a big body
        else:
            self._transport.write(data + body)

    def _close(self) -> None:
        self._closing = True
        self._writable.set()
        if self._transport:
            self._transport.close()

    def _idle(self) -> bool:
        """No request waiting or being handled."""
        return not self._pending and (self._worker is None or self._worker.done())

    def close_if_idle(self) -> None:
        if self._idle() and not self._in_request:
            self._close()

    def give_up(self) -> None:
        """Shutdown ran out of time: every request still arriving or running is answered 503."""
        if self._closing:
            return
        if self._dispatching and self._worker and not self._abandoned:
            self._abandoned = True
            self._worker.cancel()
        if self._in_request:
            self._refuse(503, "server shutting down")
        elif self._idle():
            self._close()

    def check_deadline(self, now: float) -> None:
        """Called by the sweeper: end whatever phase has run past its deadline."""
        if self._closing:
            return
        if not self._writable.is_set() and now >= self._write_deadline and self._transport:
            self._closing = True
            self._transport.abort()  # its unread answers cannot be delivered, only dropped
            return
        worker = self._worker
        if self._handling and now >= self._handle_deadline and not self._timed_out and worker:
            self._timed_out = True
            worker.cancel()
        if now < self._deadline:
            return
        if self._in_request:
            self._refuse(408, "request not received in time")
        elif self._idle():
            self._close()  # idle keep-alive connection


@dataclasses.dataclass
class _Answer:
    """One answer owed on a connection, in order: a request to handle, or a refusal."""

    request: Request | None
    keep_alive: bool
    response: Response | None = None
    head_only: bool = False  # a HEAD request: the answer's headers only


def _body_size(answer: _Answer) -> int:
    return len(answer.request.body) if answer.request else 0


def _is_upgrade(headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return "upgrade" in headers and "upgrade" in tokens


def _has_body(headers: dict[str, str]) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


class HttpServer:
    def __init__(self, handler: Handler, limits: Limits | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.connections: set[_Connection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._date_second = -1
        self._date = ""

    def date(self) -> str:
        """The Date header's value, formatted once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = email.utils.formatdate(now, usegmt=True)
        return self._date

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

    async def start(
        self,
        host: str,
        port: int,
        reuse_port: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """Listen; with reuse_port, sibling worker processes share the port (SO_REUSEPORT).

        With ssl_context, connections speak TLS (a context whose SNI callback may move a new
        connection onto another context: see tls.py).
        """
        self._server = await listen(lambda: _Connection(self), host, port, reuse_port, ssl_context)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        self.draining = True
        if self._server:
            self._server.close()

    async def close(self, deadline: float | None = None) -> None:
        """Stop accepting; close connections as they go idle, all of them by `deadline`.

        `deadline` is on the event loop's clock. A request still arriving or running then is
        answered 503 with `Connection: close`; without a deadline, that happens at once.
        """
        self.stop_accepting()
        loop = asyncio.get_running_loop()
        while True:
            for conn in list(self.connections):
                conn.close_if_idle()
            if not self.connections or deadline is None or loop.time() >= deadline:
                break
            await asyncio.sleep(min(0.02, max(0.0, deadline - loop.time())))
        for conn in list(self.connections):
            conn.give_up()
        # Let the workers write those answers before the caller goes on to stop the process.
        for _ in range(3):
            await asyncio.sleep(0)
        if self._server:
            await self._server.wait_closed()
        if self._sweeper:
            self._sweeper.cancel()
