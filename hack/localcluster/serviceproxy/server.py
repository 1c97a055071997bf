"""The proxy's connection handling: read the head, find the Service, connect to one of its ready
endpoints, then relay. Every refusal is an HTTP answer with a one-line reason, never a silently
dropped connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from .balancer import RoundRobin
from .bodies import BadBodyError, copy_body
from .hosts import parse_service_host
from .relay import CHUNK, Flow, close, pump
from .request_head import HEAD_END, BadHead, Destination, parse_head
from .routing import Endpoint, Route, RoutingTable, Unroutable

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
# After an error answer, how long to read what the client still sends (a request body), so
# closing with unread data does not reset the connection before the client reads the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


@dataclass(frozen=True)
class ProxySettings:
    head_timeout: float = 30.0
    connect_timeout: float = 5.0
    log_connections: bool = False


class Upstream:
    """One connection to an endpoint, and the task copying its answers to the client."""

    def __init__(
        self,
        route: Route,
        endpoint: Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.route = route
        self.endpoint = endpoint
        self.writer = writer
        self.peer = peer
        self.sent = Flow()
        self.received = Flow()
        self._client = client
        self._closed = False
        self._answers = asyncio.ensure_future(pump(reader, client, self.received))
        self._answers.add_done_callback(self._answers_done)

    def serves(self, route: Route) -> bool:
        return (route.service, route.port) == (self.route.service, self.route.port)

    def _answers_done(self, task: asyncio.Future[None]) -> None:
        # A reset on the way back ends the client connection too (its reads then end), rather
        # than leave the client waiting for an answer that cannot come.
        if not task.cancelled() and task.exception() is not None:
            self._client.close()

    async def finish(self) -> None:
        """The client is done sending: pass that on and let the answers run to their end."""
        if self.writer.can_write_eof() and not self.writer.is_closing():
            self.writer.write_eof()
        with contextlib.suppress(ConnectionError, OSError):
            await self._answers

    async def close(self, log_it: bool) -> None:
        """Leave this endpoint: between requests (the last answer is through), or at the end."""
        if self._closed:
            return
        self._closed = True
        self._answers.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await self._answers
        await close(self.writer)
        if log_it:
            ending = "reset" if self.sent.failed or self.received.failed else "closed"
            log.info(
                "%s %s %s: %d bytes sent, %d received",
                self.peer,
                ending,
                self.endpoint,
                self.sent.copied,
                self.received.copied,
            )


class ProxyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ServiceProxy:
    def __init__(self, table: RoutingTable, settings: ProxySettings) -> None:
        self.table = table
        self.balancer = RoundRobin()
        self.settings = settings
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; the port (useful when `port` is 0)."""
        # The reader's limit is also the largest head readuntil accepts.
        self._server = await asyncio.start_server(self.handle, host, port, limit=MAX_HEAD)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop listening and end every open connection."""
        if self._server is not None:
            self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            await close(writer)  # the proxy is stopping
        finally:
            self._connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests one after another. Each goes to the endpoint the connection holds while
        it names the same Service port; one naming another moves the connection there (so a
        client pooling proxy connections across hosts never reaches the wrong pods)."""
        peer = _peer(writer)
        upstream: Upstream | None = None
        try:
            head = await self._read_head(reader, self.settings.head_timeout)
            while head is not None:
                request, route = self._route(head)
                if upstream is None or not upstream.serves(route):
                    if upstream is not None:
                        await upstream.close(self.settings.log_connections)
                    upstream = await self._open(route, writer, peer)
                if request.tunnel:
                    writer.write(ESTABLISHED)
                    await pump(reader, upstream.writer, upstream.sent)
                    break
                upstream.writer.write(head)
                upstream.sent.copied += len(head)
                await copy_body(request.body_length, reader, upstream.writer, upstream.sent)
                if request.upgrade:
                    await pump(reader, upstream.writer, upstream.sent)
                    break
                # Between requests a keep-alive connection may idle as long as it likes.
                head = await self._read_head(reader, None)
            if upstream is not None:
                await upstream.finish()
        except ProxyError as err:
            log.info("%s: %d %s", peer, err.status, err.reason)
            if upstream is not None:
                await upstream.close(self.settings.log_connections)
                upstream = None
            await self._refuse(reader, writer, err)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, BadBodyError):
            pass  # a side went away or broke the framing: nothing more can be relayed
        except asyncio.LimitOverrunError:
            pass  # a later head or a chunk line too long: as broken as bad framing
        finally:
            if upstream is not None:
                await upstream.close(self.settings.log_connections)
            await close(writer)

    async def _open(self, route: Route, client: asyncio.StreamWriter, peer: str) -> Upstream:
        endpoint, (reader, writer) = await self._connect(route)
        if self.settings.log_connections:
            log.info("%s -> %s port %d: %s", peer, route.service, route.port, endpoint)
        return Upstream(route, endpoint, reader, writer, client, peer)

    async def _read_head(self, reader: asyncio.StreamReader, timeout: float | None) -> bytes | None:
        """The request head, or None when the client left before sending one."""
        try:
            return await asyncio.wait_for(reader.readuntil(HEAD_END), timeout)
        except asyncio.LimitOverrunError as err:
            raise ProxyError(431, f"request head larger than {MAX_HEAD} bytes") from err
        except TimeoutError as err:
            raise ProxyError(408, "request head not received in time") from err
        except asyncio.IncompleteReadError:
            return None

    def _route(self, head: bytes) -> tuple[Destination, Route]:
        destination = parse_head(head)
        if isinstance(destination, BadHead):
            raise ProxyError(destination.status, destination.reason)
        host = parse_service_host(destination.host)
        if host is None:
            raise ProxyError(502, f"not a service host: {destination.host}")
        route = self.table.resolve(host, destination.port)
        if isinstance(route, Unroutable):
            raise ProxyError(502, route.reason)
        if not route.endpoints:
            raise ProxyError(
                503, f"no ready endpoints for service {route.service} port {route.port}"
            )
        return destination, route

    async def _connect(
        self, route: Route
    ) -> tuple[Endpoint, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """The first endpoint in this connection's turn that accepts; nothing has been sent
        yet, so a refusing pod costs nothing but a try of the next."""
        failures = []
        for endpoint in self.balancer.order(route):
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(endpoint.ip, endpoint.port, limit=CHUNK),
                    self.settings.connect_timeout,
                )
            except (OSError, TimeoutError) as err:
                failures.append(f"{endpoint}: {_brief(err)}")
                log.warning(
                    "%s port %d: %s refused (%s)", route.service, route.port, endpoint, _brief(err)
                )
                continue
            return endpoint, upstream
        raise ProxyError(
            502,
            f"no endpoint of service {route.service} port {route.port} accepted a connection "
            f"({'; '.join(failures)})",
        )

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, err: ProxyError
    ) -> None:
        body = (err.reason.replace("\r", " ").replace("\n", " ") + "\n").encode()
        head = (
            f"HTTP/1.1 {err.status} {REASONS.get(err.status, 'Error')}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            writer.write(head.encode() + body)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(_discard(reader, LINGER_BYTES), LINGER_SECONDS)
        await close(writer)


async def _discard(reader: asyncio.StreamReader, limit: int) -> None:
    while limit > 0 and (data := await reader.read(CHUNK)):
        limit -= len(data)


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _brief(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    return getattr(err, "strerror", None) or type(err).__name__
