"""Bytes both ways between a client and an endpoint, with fixed-size reads and backpressure:
a side that does not read stops the other side being read (so memory per connection is
bounded by the buffers, whatever the traffic)."""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 64 * 1024


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> int:
    """Copy until `source` ends, then half-close `sink`; the bytes copied."""
    copied = 0
    while data := await source.read(CHUNK):
        sink.write(data)
        copied += len(data)
        await sink.drain()
    if sink.can_write_eof() and not sink.is_closing():
        sink.write_eof()
    return copied


async def relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> tuple[int, int]:
    """Run both directions until both have ended, or one fails (a reset): then close both.
    Returns the bytes sent to the endpoint and back to the client."""
    up = asyncio.ensure_future(pump(client[0], upstream[1]))
    down = asyncio.ensure_future(pump(upstream[0], client[1]))
    try:
        _done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
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
    return _result(up), _result(down)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def _result(task: asyncio.Future[int]) -> int:
    if task.cancelled() or task.exception() is not None:
        return -1
    return task.result()
