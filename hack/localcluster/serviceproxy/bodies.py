"""Copying one request body as it is, knowing where it ends (a length, or chunked framing), so
the proxy can read the next request's head on the same connection."""

from __future__ import annotations

import asyncio

from .relay import CHUNK, Flow
from .request_head import CHUNKED

CRLF = b"\r\n"


class BadBodyError(ValueError):
    """The chunked framing is broken: the connection cannot be read any further."""


async def copy_body(
    length: int, source: asyncio.StreamReader, sink: asyncio.StreamWriter, flow: Flow
) -> None:
    if length == CHUNKED:
        await _copy_chunked(source, sink, flow)
    else:
        await copy_exactly(length, source, sink, flow)


async def copy_exactly(
    count: int, source: asyncio.StreamReader, sink: asyncio.StreamWriter, flow: Flow
) -> None:
    while count > 0:
        data = await source.read(min(CHUNK, count))
        if not data:
            raise asyncio.IncompleteReadError(b"", count)
        sink.write(data)
        flow.copied += len(data)
        count -= len(data)
        await sink.drain()


async def _copy_chunked(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, flow: Flow
) -> None:
    while True:
        line = await source.readuntil(CRLF)  # chunk size in hex, maybe `;extensions`
        _forward(line, sink, flow)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as err:
            raise BadBodyError(f"bad chunk size line {line[:40]!r}") from err
        if size == 0:
            while (trailer := await source.readuntil(CRLF)) != CRLF:
                _forward(trailer, sink, flow)
            _forward(CRLF, sink, flow)
            await sink.drain()
            return
        await copy_exactly(size + len(CRLF), source, sink, flow)


def _forward(data: bytes, sink: asyncio.StreamWriter, flow: Flow) -> None:
    sink.write(data)
    flow.copied += len(data)
