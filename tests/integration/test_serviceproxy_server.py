"""The service proxy's connection handling over real loopback sockets, with a routing table
fed plain objects (no control plane): relaying, CONNECT, fallbacks and every HTTP refusal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from modelship_localcluster.serviceproxy.routing import RoutingTable
from modelship_localcluster.serviceproxy.server import MAX_HEAD, ProxySettings, ServiceProxy

PORT = 18501  # the pods' port; each pod has its own loopback address
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def service_object(name: str = "web", cluster_ip: str = "10.96.7.7") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "selector": {"app": name},
            "clusterIP": cluster_ip,
            "ports": [{"port": 8501, "targetPort": PORT}],
        },
    }


def pod_object(name: str, ip: str) -> dict[str, Any]:
    """Pod `web-x` belongs to Service `web`, `other-x` to `other`."""
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"app": name.partition("-")[0]},
        },
        "spec": {"containers": [{"name": "c"}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def table(pods: dict[str, str]) -> RoutingTable:
    routing = RoutingTable()
    routing.replace_services([service_object(), service_object("other", "10.96.7.8")])
    routing.replace_pods([pod_object(name, ip) for name, ip in pods.items()])
    return routing


@contextlib.asynccontextmanager
async def proxy_for(routing: RoutingTable, **settings: Any) -> AsyncIterator[int]:
    proxy = ServiceProxy(routing, ProxySettings(**settings))
    try:
        yield await proxy.start("127.0.0.1", 0)
    finally:
        await proxy.stop()


@contextlib.asynccontextmanager
async def pod_server(ip: str, handler: Handler) -> AsyncIterator[None]:
    server = await asyncio.start_server(handler, ip, PORT)
    async with server:
        yield


def answering(name: str, seen: list[bytes] | None = None) -> Handler:
    """A pod that answers every request on a connection with its name and the size of the
    body it read (keep-alive; Content-Length or chunked bodies)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if seen is not None:
                    seen.append(head)
                size = await read_body(head, reader)
                body = name.encode() + (b" %d" % size if size else b"")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        writer.close()

    return handle


async def read_body(head: bytes, reader: asyncio.StreamReader) -> int:
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        size = 0
        while chunk := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            size += len(await reader.readexactly(chunk + 2)) - 2
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers, up to the final empty line
        return size
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(await reader.readexactly(int(line.split(b":")[1])))
    return 0


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes back as they come; after the client's EOF, a last word."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write(b"<eof seen>")
    await writer.drain()
    writer.close()


async def open_proxy(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: str, body: bytes = b""
) -> tuple[int, bytes]:
    writer.write(head.encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


def get(host: str = "web.ns.svc:8501", path: str = "/x", *headers: str) -> str:
    lines = [f"GET http://{host}{path} HTTP/1.1", f"Host: {host}", *headers]
    return "\r\n".join(lines) + "\r\n\r\n"


async def one_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await open_proxy(port)
    try:
        return await request(reader, writer, head, body)
    finally:
        writer.close()


def test_requests_reach_pods_with_their_head_unchanged_and_spread_per_connection() -> None:
    async def scenario() -> None:
        seen: list[bytes] = []
        pods = {"web-a": "127.77.252.2", "web-b": "127.77.252.3"}
        async with (
            pod_server(pods["web-a"], answering("a", seen)),
            pod_server(pods["web-b"], answering("b")),
            proxy_for(table(pods)) as port,
        ):
            answers = [await one_request(port, get()) for _ in range(4)]
            assert sorted(answers) == [(200, b"a"), (200, b"a"), (200, b"b"), (200, b"b")]
            assert seen[0] == get().encode()
            for host in ("web.ns", "web.ns.svc.cluster.local:8501", "10.96.7.7:8501"):
                status, _ = await one_request(port, get(host if ":" in host else host + ":8501"))
                assert status == 200

    asyncio.run(scenario())


def test_a_connection_stays_with_its_first_endpoint() -> None:
    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2", "web-b": "127.77.252.3"}
        async with (
            pod_server(pods["web-a"], answering("a")),
            pod_server(pods["web-b"], answering("b")),
            proxy_for(table(pods)) as port,
        ):
            reader, writer = await open_proxy(port)
            answers = {(await request(reader, writer, get()))[1] for _ in range(5)}
            writer.close()
            assert len(answers) == 1

    asyncio.run(scenario())


def test_requests_on_one_connection_follow_the_service_they_name() -> None:
    """A client pooling proxy connections across hosts (urllib3 does for http:// URLs) sends
    requests for two Services on one connection: each reaches its own Service."""

    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2", "other-a": "127.77.252.4"}
        async with (
            pod_server(pods["web-a"], answering("web")),
            pod_server(pods["other-a"], answering("other")),
            proxy_for(table(pods)) as port,
        ):
            reader, writer = await open_proxy(port)
            hosts = ["web.ns.svc:8501", "other.ns.svc:8501", "10.96.7.8:8501", "web.ns:8501"]
            answers = [(await request(reader, writer, get(host)))[1] for host in hosts]
            writer.close()
            assert answers == [b"web", b"other", b"other", b"web"]

    asyncio.run(scenario())


def test_bodies_are_relayed_whole_and_the_next_request_follows() -> None:
    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2", "other-a": "127.77.252.4"}
        async with (
            pod_server(pods["web-a"], answering("web")),
            pod_server(pods["other-a"], answering("other")),
            proxy_for(table(pods)) as port,
        ):
            reader, writer = await open_proxy(port)
            body = b"x" * 200_000
            post = get("web.ns.svc:8501", "/p", f"Content-Length: {len(body)}")
            assert await request(reader, writer, "POST" + post[3:], body) == (200, b"web 200000")
            chunks = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
            chunked = get("web.ns.svc:8501", "/c", "Transfer-Encoding: chunked")
            assert await request(reader, writer, "POST" + chunked[3:], chunks) == (200, b"web 8")
            # Had the proxy misjudged where a body ends, this head would not be read as one.
            assert await request(reader, writer, get("other.ns.svc:8501")) == (200, b"other")
            assert await request(reader, writer, get("nope.ns.svc:8501")) == (
                502,
                b"no service ns/nope\n",
            )
            assert await reader.read() == b""  # closed after the refusal
            writer.close()

    asyncio.run(scenario())


def test_a_pod_resetting_the_connection_ends_the_clients() -> None:
    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2"}

        async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.transport.abort()  # RST instead of an answer

        async with pod_server(pods["web-a"], resets), proxy_for(table(pods)) as port:
            reader, writer = await open_proxy(port)
            writer.write(get().encode())
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
            writer.close()

    asyncio.run(scenario())


def test_a_refusing_pod_is_skipped_and_all_refusing_is_502() -> None:
    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2", "web-b": "127.77.252.3"}  # only b listens
        async with pod_server(pods["web-b"], answering("b")), proxy_for(table(pods)) as port:
            assert [await one_request(port, get()) for _ in range(3)] == [(200, b"b")] * 3
        async with proxy_for(table(pods)) as port:
            status, body = await one_request(port, get())
            assert status == 502
            assert b"no endpoint of service ns/web port 8501 accepted" in body

    asyncio.run(scenario())


def test_refusals_are_http_answers() -> None:
    async def scenario() -> None:
        async with proxy_for(table({})) as port:
            assert await one_request(port, get()) == (
                503,
                b"no ready endpoints for service ns/web port 8501\n",
            )
            assert await one_request(port, get("web.ns.svc:9999")) == (
                502,
                b"service ns/web has no port 9999\n",
            )
            assert await one_request(port, get("nope.ns.svc:8501")) == (
                502,
                b"no service ns/nope\n",
            )
            assert await one_request(port, get("example:80")) == (
                502,
                b"not a service host: example\n",
            )
            status, _ = await one_request(port, "GET https://web.ns.svc/ HTTP/1.1\r\n\r\n")
            assert status == 400

    asyncio.run(scenario())


def test_refusal_of_a_request_with_a_body_is_read_by_the_client() -> None:
    async def scenario() -> None:
        body = b"x" * 300_000
        head = f"POST {get()[4:].split(chr(13))[0]}\r\nContent-Length: {len(body)}\r\n\r\n"
        async with proxy_for(table({})) as port:
            status, _ = await one_request(port, head, body)
            assert status == 503

    asyncio.run(scenario())


def test_a_head_over_the_limit_is_431() -> None:
    async def scenario() -> None:
        async with proxy_for(table({})) as port:
            big = get()[:-2] + f"X-Big: {'y' * MAX_HEAD}\r\n\r\n"
            status, body = await one_request(port, big)
            assert status == 431
            assert str(MAX_HEAD).encode() in body

    asyncio.run(scenario())


def test_a_slow_head_is_408() -> None:
    async def scenario() -> None:
        async with proxy_for(table({}), head_timeout=0.3) as port:
            reader, writer = await open_proxy(port)
            writer.write(b"GET http://web.ns.svc:8501/ HTTP/1.1\r\n")  # and nothing more
            status_line = await reader.readline()
            writer.close()
            assert status_line.startswith(b"HTTP/1.1 408 ")

    asyncio.run(scenario())


def test_connect_tunnels_large_streams_both_ways_and_passes_half_close() -> None:
    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2"}
        payload = bytes(range(256)) * 32 * 1024  # 8 MiB, many relay buffers long
        async with pod_server(pods["web-a"], echo), proxy_for(table(pods)) as port:
            reader, writer = await open_proxy(port)
            writer.write(b"CONNECT web.ns.svc:8501 HTTP/1.1\r\nHost: web.ns.svc:8501\r\n\r\n")
            assert await reader.readuntil(b"\r\n\r\n") == (
                b"HTTP/1.1 200 Connection established\r\n\r\n"
            )

            async def send() -> None:
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sender = asyncio.ensure_future(send())
            received = await reader.read(-1)
            await sender
            writer.close()
            assert received == payload + b"<eof seen>"

    asyncio.run(scenario())


def test_a_pod_that_stops_reading_holds_back_the_client_instead_of_filling_memory() -> None:
    async def scenario() -> None:
        pods = {"web-a": "127.77.252.2"}
        gate = asyncio.Event()
        received = bytearray()

        async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await gate.wait()
            while data := await reader.read(65536):
                received.extend(data)
            writer.close()

        async with pod_server(pods["web-a"], stalled), proxy_for(table(pods)) as port:
            reader, writer = await open_proxy(port)
            writer.write(b"CONNECT web.ns.svc:8501 HTTP/1.1\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            chunk = b"z" * 65536
            sent = 0
            # The client's own writes stop draining once the proxy stops reading.
            with contextlib.suppress(TimeoutError):
                while sent < 256 * 1024 * 1024:
                    writer.write(chunk)
                    sent += len(chunk)
                    await asyncio.wait_for(writer.drain(), 2)
            assert sent < 256 * 1024 * 1024
            gate.set()
            writer.write_eof()
            await reader.read(-1)
            writer.close()
            # Held back, not lost: everything arrives once the pod reads.
            assert len(received) == sent
            assert received.count(b"z") == sent

    asyncio.run(scenario())
