"""How every listener of the server opens its port (REST, health and gRPC alike)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable


async def listen(
    protocol: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    reuse_port: bool,
    ssl_context: ssl.SSLContext | None,
) -> asyncio.Server:
    """With reuse_port, sibling worker processes share the port (SO_REUSEPORT, see workers.py);
    a deep backlog, so a burst of new connections waits rather than being refused."""
    return await asyncio.get_running_loop().create_server(
        protocol,
        host,
        port,
        reuse_address=True,
        reuse_port=reuse_port or None,
        backlog=1024,
        ssl=ssl_context,
    )
