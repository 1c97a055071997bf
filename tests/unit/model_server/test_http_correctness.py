"""HTTP/1.1 details on loopback: HEAD, 100-continue, pipelined errors, upgrades, Date, drain."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re

from modelship_server.http.server import HttpServer, Limits, Request, Response


async def _echo(request: Request) -> Response:
    body = json.dumps({"path": request.path, "len": len(request.body)})
    return Response(200, body.encode(), headers=(("x-path", request.path),))


def _serve(client: object, limits: Limits | None = None) -> None:
    async def main() -> None:
        server = HttpServer(_echo, limits or Limits())
        port = await server.start("127.0.0.1", 0)
        try:
            await client(server, port)  # type: ignore[operator]
        finally:
            await server.close()

    asyncio.run(main())


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 10)


async def _read_response(
    reader: asyncio.StreamReader, head_only: bool = False
) -> tuple[bytes, dict[str, str], bytes]:
    """One response: status line, headers (lower-cased names) and a Content-Length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = b""
    if not head_only and not status.split()[1].startswith("1"):
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status.encode(), headers, body


def _statuses(data: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_head_has_the_headers_of_get_and_no_body() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /same HTTP/1.1\r\nHost: x\r\n\r\n")
        _, get_headers, get_body = await _read_response(reader)
        # A HEAD then a GET pipelined: a body after the HEAD answer would be read as the
        # GET's status line.
        writer.write(
            b"HEAD /same HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        head_status, head_headers, _ = await _read_response(reader, head_only=True)
        next_status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert head_status.startswith(b"HTTP/1.1 200")
        assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))
        assert head_headers["x-path"] == "/same"
        assert next_status.startswith(b"HTTP/1.1 200"), next_status

    _serve(client)


def test_expect_100_continue_is_answered_before_the_body() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        interim, _, _ = await _read_response(reader)
        assert interim == b"HTTP/1.1 100 Continue"
        writer.write(b"hello")
        final, _, body = await _read_response(reader)
        assert final.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["len"] == 5
        writer.close()

    _serve(client)


def test_expect_100_continue_on_a_too_large_body_is_refused_at_once() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999\r\n\r\n"
        )
        data = await _read_all(reader)
        writer.close()
        assert _statuses(data) == ["413"]
        assert b"connection: close" in data

    _serve(client, Limits(max_body_bytes=100))


def test_a_bad_request_is_answered_after_every_good_one_before_it() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
            b"GET /c HTTP/9.9 nonsense\r\n\r\n"
        )
        data = await _read_all(reader)
        writer.close()
        assert _statuses(data) == ["200", "200", "400"]
        assert data.index(b'"/a"') < data.index(b'"/b"') < data.index(b"malformed")

    _serve(client)


def test_bytes_after_connection_close_do_not_cost_the_answer() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nstray bytes\r\n")
        data = await _read_all(reader)
        writer.close()
        assert _statuses(data) == ["200"]
        assert b'"/only"' in data

    _serve(client)


def test_h2c_upgrade_is_ignored_and_the_connection_stays_http11() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        first, _, body = await _read_response(reader)
        writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        second, _, next_body = await _read_response(reader)
        writer.close()
        assert first.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["path"] == "/up"
        assert second.startswith(b"HTTP/1.1 200")
        assert json.loads(next_body)["path"] == "/next"

    _serve(client)


def test_an_upgrade_request_with_a_body_is_refused_not_misparsed() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
            b"Content-Length: 29\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
        )
        data = await _read_all(reader)
        writer.close()
        assert _statuses(data) == ["400"]
        assert b"smuggled" not in data

    _serve(client)


def test_every_answer_has_a_date() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n")
        data = await _read_all(reader)
        writer.close()
        heads = re.findall(rb"HTTP/1\.1 .*?\r\n\r\n", data, re.DOTALL)
        assert len(heads) == 2
        for head in heads:
            dates = [line[6:] for line in head.split(b"\r\n") if line.lower().startswith(b"date:")]
            assert len(dates) == 1
            assert email.utils.parsedate_to_datetime(dates[0].decode()).tzname() == "UTC"

    _serve(client)


def test_drain_finishes_an_upload_that_completes_in_time() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(0.1)  # the server has read the head: the request is underway
        loop = asyncio.get_running_loop()
        closing = asyncio.create_task(server.close(deadline=loop.time() + 30))
        await asyncio.sleep(0.1)
        assert not closing.done()
        writer.write(b"cd")
        data = await _read_all(reader)
        await closing
        writer.close()
        assert _statuses(data) == ["200"]
        assert b"connection: close" in data

    _serve(client)


def test_drain_answers_503_to_an_upload_unfinished_at_the_deadline() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(0.1)
        await server.close(deadline=asyncio.get_running_loop().time() + 0.2)
        data = await _read_all(reader)
        writer.close()
        assert _statuses(data) == ["503"]
        assert b"connection: close" in data

    _serve(client)


def test_drain_closes_idle_keep_alive_connections_at_once() -> None:
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await _read_response(reader)
        await server.close(deadline=asyncio.get_running_loop().time() + 60)
        assert await _read_all(reader) == b""
        writer.close()

    _serve(client)


def test_request_targets_reach_the_handler_as_parse_url_gives_them() -> None:
    # Plain origin-form paths skip the URL parser: they must come out as it would give them.
    async def client(server: HttpServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for target in (b"/v1/models/m:predict", b"//twice", b"/a%20b;c", b"/q?x=1", b"/f#frag"):
            writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = await _read_response(reader)
            assert status.startswith(b"HTTP/1.1 200"), target
            want = target.split(b"?")[0].split(b"#")[0].decode()
            assert headers["x-path"] == want
        writer.write(b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n")  # parse_url refuses it
        data = await _read_all(reader)
        writer.close()
        assert _statuses(data) == ["400"]

    _serve(client)
