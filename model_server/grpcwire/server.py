"""The gRPC listener: HTTP/2 connections (cleartext, or TLS with ALPN h2) on the event loop."""

from __future__ import annotations

import asyncio
import ssl

from ..listen import listen
from . import frames
from .calls import Registry
from .connection import H2Connection

MIN_CONNECTION_WINDOW = 16 << 20


class GrpcServer:
    """Serves the unary methods registered in `registry`, with the same start/drain shape as
    the REST server: listen, stop accepting, let calls finish by a deadline, close."""

    def __init__(self, registry: Registry, max_message: int, read_timeout: float = 30.0) -> None:
        self.registry = registry
        self.max_message = max_message
        self.read_timeout = read_timeout
        # A whole message always fits in the window; more would only let a client park data.
        self.connection_window = min(
            frames.MAX_WINDOW, max(MIN_CONNECTION_WINDOW, 2 * (max_message + 5))
        )
        self.connections: set[H2Connection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def start(
        self,
        host: str,
        port: int,
        reuse_port: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """Listen; with reuse_port, sibling worker processes share the port (SO_REUSEPORT).

        A TLS context must offer ALPN "h2": gRPC clients refuse a connection without it.
        """
        self._loop = asyncio.get_running_loop()
        self._server = await listen(lambda: H2Connection(self), host, port, reuse_port, ssl_context)
        self._sweeper = self._loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        interval = min(1.0, self.read_timeout / 10)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self.connections):
                conn.check_deadline(now, self.read_timeout)

    def stop_accepting(self) -> None:
        """No new connections; open ones get GOAWAY and close once their calls are done."""
        self.draining = True
        if self._server:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()

    async def close(self, deadline: float | None = None) -> None:
        """Wait for calls in flight until `deadline` (the loop's clock), then cut the rest."""
        self.stop_accepting()
        loop = asyncio.get_running_loop()
        while self.connections and deadline is not None and loop.time() < deadline:
            if all(conn.idle for conn in self.connections):
                break
            await asyncio.sleep(min(0.02, max(0.0, deadline - loop.time())))
        for conn in list(self.connections):
            conn.abort()
        for _ in range(3):
            await asyncio.sleep(0)
        if self._sweeper:
            self._sweeper.cancel()
        if self._server:
            await self._server.wait_closed()
