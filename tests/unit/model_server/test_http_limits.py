"""Bounded memory per connection: header bytes counted as they arrive, write backpressure."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import cast

from modelship_server.http.server import HttpServer, Limits, Request, Response

BIG_ANSWER = 1 << 20


class _Counting:
    """A handler that answers BIG_ANSWER bytes and counts the requests it has handled."""

    def __init__(self) -> None:
        self.handled = 0

    async def __call__(self, request: Request) -> Response:
        self.handled += 1
        return Response(200, b"x" * BIG_ANSWER, "application/octet-stream")


async def _refused_before_sending(port: int, head: bytes, filler: bytes, limit: int) -> bytes:
    """Send head, then filler without end until the server answers; return the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    sent = 0
    answer = b""
    try:
        # Ten times the limit at most: an answer only after the header ended would never come.
        while sent < 10 * limit and not answer:
            writer.write(filler * 1024)
            sent += len(filler) * 1024
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(4096), 0.05)
        if not answer:
            answer = await asyncio.wait_for(reader.read(4096), 5)
    except ConnectionError:
        answer = answer or await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
    return answer


def test_a_huge_header_value_or_name_is_refused_while_it_arrives() -> None:
    limit = 16 << 10

    async def main() -> None:
        server = HttpServer(_Counting(), Limits(max_header_bytes=limit))
        port = await server.start("127.0.0.1", 0)
        try:
            value = await _refused_before_sending(
                port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"v", limit
            )
            name = await _refused_before_sending(
                port, b"GET / HTTP/1.1\r\nHost: x\r\n", b"N", limit
            )
            many = await _refused_before_sending(port, b"GET / HTTP/1.1\r\n", b"X-A: b\r\n", limit)
        finally:
            await server.close()
        for answer in (value, name, many):
            assert answer.startswith(b"HTTP/1.1 431"), answer[:80]

    asyncio.run(main())


def test_headers_just_under_the_limit_are_accepted() -> None:
    limit = 16 << 10

    async def main() -> None:
        handler = _Counting()
        server = HttpServer(handler, Limits(max_header_bytes=limit))
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
            writer.write(head + b"v" * (limit - len(head) - 4) + b"\r\n\r\n")
            status = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
        finally:
            await server.close()
        assert status.startswith(b"HTTP/1.1 200"), status

    asyncio.run(main())


def test_a_client_that_does_not_read_cannot_make_the_server_buffer_its_answers() -> None:
    high = 64 << 10
    requests = 200  # 200 MiB of answers if every request were handled

    async def main() -> None:
        handler = _Counting()
        server = HttpServer(handler, Limits(write_buffer_high=high))
        port = await server.start("127.0.0.1", 0)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * requests)
            # Wait until the server stops handling: the client reads nothing meanwhile.
            seen = -1
            while seen != handler.handled:
                seen = handler.handled
                await asyncio.sleep(0.3)
            (conn,) = server.connections
            buffered = conn._transport.get_write_buffer_size()  # type: ignore[union-attr]
            assert handler.handled < requests // 4, handler.handled
            assert buffered <= high + BIG_ANSWER + 4096, buffered
            # Reading resumes the connection: every request gets its answer in the end.
            received = 0
            while received < requests * BIG_ANSWER:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
                assert chunk
                received += len(chunk)
            assert handler.handled == requests
        finally:
            writer.close()
            await server.close()

    asyncio.run(main())


def test_a_huge_request_line_is_refused_while_it_arrives() -> None:
    limit = 16 << 10

    async def main() -> None:
        server = HttpServer(_Counting(), Limits(max_header_bytes=limit))
        port = await server.start("127.0.0.1", 0)
        try:
            answer = await _refused_before_sending(port, b"GET /", b"a", limit)
        finally:
            await server.close()
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]

    asyncio.run(main())


def test_a_client_that_stops_reading_for_the_idle_timeout_is_dropped() -> None:
    async def main() -> None:
        server = HttpServer(_Counting(), Limits(write_buffer_high=64 << 10, idle_timeout=0.5))
        port = await server.start("127.0.0.1", 0)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.connect(("127.0.0.1", port))
        _reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
            while not server.connections:
                await asyncio.sleep(0.05)
            while server.connections:  # dropped by the sweeper, or the test times out
                await asyncio.sleep(0.1)
            assert handler_count(server) < 50
        finally:
            writer.close()
            await server.close()

    def handler_count(server: HttpServer) -> int:
        return cast(_Counting, server.handler).handled

    asyncio.run(main())


def test_pipelined_bodies_waiting_for_a_busy_handler_are_bounded() -> None:
    body = 512 << 10
    requests = 16  # 8 MiB of bodies

    async def main() -> None:
        release = asyncio.Event()
        handled = 0

        async def blocked(request: Request) -> Response:
            nonlocal handled
            await release.wait()
            handled += 1
            return Response(200, b"{}")

        server = HttpServer(blocked, Limits())
        port = await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % body + b"b" * body
        sending = asyncio.create_task(writer.drain())
        writer.write(one * requests)
        try:
            while not server.connections:
                await asyncio.sleep(0.05)
            (conn,) = server.connections
            # Wait until the server stops reading: its parsed-ahead bytes stop growing.
            seen = -1
            while seen != conn._pending_bytes:
                seen = conn._pending_bytes
                await asyncio.sleep(0.3)
            assert 0 < seen <= (1 << 20) + body, seen
            release.set()
            data = b""
            while data.count(b"HTTP/1.1 200") < requests:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                assert chunk
                data += chunk
            assert handled == requests
        finally:
            sending.cancel()
            writer.close()
            await server.close()

    asyncio.run(main())
