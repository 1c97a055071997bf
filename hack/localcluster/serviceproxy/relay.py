"""Bytes both ways between a client and an endpoint, with fixed-size reads and backpressure:
a side that does not read stops the other side being read (so memory per connection is
bounded by the buffers, whatever the traffic)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

CHUNK = 64 * 1024


@dataclass
class Flow:
    """Bytes copied one way so far, and whether that direction ended in an error (a reset)."""

    copied: int = 0
    failed: bool = False


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, flow: Flow) -> None:
    """Copy until `source` ends, then half-close `sink`."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            flow.copied += len(data)
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
    except (ConnectionError, OSError):
        flow.failed = True
        raise


async def relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> tuple[Flow, Flow]:
    """Run both directions until both have ended, or one fails (a reset): then close both.
    Returns what went to the endpoint and what came back to the client."""
    sent, received = Flow(), Flow()
    up = asyncio.ensure_future(pump(client[0], upstream[1], sent))
    down = asyncio.ensure_future(pump(upstream[0], client[1], received))
    try:
        done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.exception()  # retrieved: a reset is how connections often end; Flow says so
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task
    finally:
        for task in (up, down):
            task.cancel()
        await close(upstream[1])
        await close(client[1])
    return sent, received


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
