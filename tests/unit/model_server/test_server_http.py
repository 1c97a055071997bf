"""The HTTP/1.1 layer on loopback: keep-alive, pipelining, limits and slow clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from modelship_server.http.server import HttpServer, Limits, Request, Response


async def _echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("secret internals")
    if request.path == "/slow":
        await asyncio.sleep(1)
    body = json.dumps({"method": request.method, "path": request.path, "len": len(request.body)})
    return Response(200, body.encode())


def _serve(limits: Limits, client: Callable[[int], Awaitable[None]]) -> None:
    async def main() -> None:
        server = HttpServer(_echo, limits)
        port = await server.start("127.0.0.1", 0)
        try:
            await client(port)
        finally:
            await server.close()

    asyncio.run(main())


async def _exchange(port: int, data: bytes, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(1 << 20) if not until_close else reader.read(), 5)
    finally:
        writer.close()


def test_pipelined_requests_are_answered_in_order() -> None:
    async def client(port: int) -> None:
        requests = (
            b"".join(
                f"POST /r{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {i}\r\n\r\n".encode() + b"a" * i
                for i in range(3)
            )
            + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = await _exchange(port, requests)
        assert data.count(b"HTTP/1.1 200 OK") == 4
        order = [p for p in (b'"/r0"', b'"/r1"', b'"/r2"', b'"/last"')]
        positions = [data.index(p) for p in order]
        assert positions == sorted(positions)
        assert b'"len": 2' in data

    _serve(Limits(), client)


def test_limits_and_malformed_requests() -> None:
    async def client(port: int) -> None:
        too_big = await _exchange(port, b"POST / HTTP/1.1\r\nContent-Length: 99\r\n\r\n")
        assert too_big.startswith(b"HTTP/1.1 413")
        assert b'"error"' in too_big
        chunked = (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"20\r\n" + b"a" * 32 + b"\r\n20\r\n" + b"a" * 32 + b"\r\n0\r\n\r\n"
        )
        assert (await _exchange(port, chunked)).startswith(b"HTTP/1.1 413")
        garbage = await _exchange(port, b"\x00\x01 nonsense\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")
        boom = await _exchange(port, b"GET /boom HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert boom.startswith(b"HTTP/1.1 500")
        assert b"secret" not in boom
        assert b"internal error" in boom

    _serve(Limits(max_body_bytes=40), client)


def test_slow_clients_time_out_and_others_are_served() -> None:
    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")  # and then nothing
        await writer.drain()
        fast = await _exchange(port, b"GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert fast.startswith(b"HTTP/1.1 200")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()

    _serve(Limits(read_timeout=0.3), client)


def test_handler_timeout_is_504() -> None:
    async def client(port: int) -> None:
        data = await _exchange(port, b"GET /slow HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 504")

    _serve(Limits(request_timeout=0.2), client)
