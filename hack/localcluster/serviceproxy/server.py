"""The proxy's connection handling: read the head, find the Service, connect to one of its ready
endpoints, then relay. Every refusal is an HTTP answer with a one-line reason, never a silently
dropped connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from .balancer import RoundRobin
from .hosts import parse_service_host
from .relay import CHUNK, close, relay
from .request_head import HEAD_END, BadHead, parse_head
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
        peer = _peer(writer)
        try:
            head = await self._read_head(reader)
            if head is None:
                await close(writer)
                return
            route, tunnel = self._route(head)
            endpoint, upstream = await self._connect(route)
        except ProxyError as err:
            log.info("%s: %d %s", peer, err.status, err.reason)
            await self._refuse(reader, writer, err)
            return
        except (ConnectionError, OSError):
            await close(writer)
            return
        if tunnel:
            writer.write(ESTABLISHED)
        else:
            upstream[1].write(head)
        if self.settings.log_connections:
            log.info("%s -> %s port %d: %s", peer, route.service, route.port, endpoint)
        sent, received = await relay((reader, writer), upstream)
        if self.settings.log_connections:
            sent_bytes = sent.copied + (0 if tunnel else len(head))
            ending = "reset" if sent.failed or received.failed else "closed"
            log.info("%s %s: %d bytes sent, %d received", peer, ending, sent_bytes, received.copied)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        """The request head, or None when the client left before sending one."""
        try:
            return await asyncio.wait_for(reader.readuntil(HEAD_END), self.settings.head_timeout)
        except asyncio.LimitOverrunError as err:
            raise ProxyError(431, f"request head larger than {MAX_HEAD} bytes") from err
        except TimeoutError as err:
            raise ProxyError(408, "request head not received in time") from err
        except asyncio.IncompleteReadError:
            return None

    def _route(self, head: bytes) -> tuple[Route, bool]:
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
        return route, destination.tunnel

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
