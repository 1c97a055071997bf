"""Copying bytes one way, with fixed-size reads and backpressure: a side that does not read
stops the other side being read (so memory per connection is bounded by the buffers,
whatever the traffic)."""

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


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
