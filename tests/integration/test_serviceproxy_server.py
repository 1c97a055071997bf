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


def service_object(selector: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "selector": selector,
            "clusterIP": "10.96.7.7",
            "ports": [{"port": 8501, "targetPort": PORT}],
        },
    }


def pod_object(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def table(pods: dict[str, str], selector: dict[str, str] | None = None) -> RoutingTable:
    routing = RoutingTable()
    routing.replace_services([service_object(selector or {"app": "web"})])
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
    """A pod that answers every request on a connection with its name (keep-alive)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if seen is not None:
                    seen.append(head)
                body = name.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        writer.close()

    return handle


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


def get(host: str = "web.ns.svc:8501", path: str = "/x") -> str:
    return f"GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n"


async def one_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await open_proxy(port)
    try:
        return await request(reader, writer, head, body)
    finally:
        writer.close()


def test_requests_reach_pods_with_their_head_unchanged_and_spread_per_connection() -> None:
    async def scenario() -> None:
        seen: list[bytes] = []
        pods = {"a": "127.77.252.2", "b": "127.77.252.3"}
        async with (
            pod_server(pods["a"], answering("a", seen)),
            pod_server(pods["b"], answering("b")),
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
        pods = {"a": "127.77.252.2", "b": "127.77.252.3"}
        async with (
            pod_server(pods["a"], answering("a")),
            pod_server(pods["b"], answering("b")),
            proxy_for(table(pods)) as port,
        ):
            reader, writer = await open_proxy(port)
            answers = {(await request(reader, writer, get()))[1] for _ in range(5)}
            writer.close()
            assert len(answers) == 1

    asyncio.run(scenario())


def test_a_refusing_pod_is_skipped_and_all_refusing_is_502() -> None:
    async def scenario() -> None:
        pods = {"a": "127.77.252.2", "b": "127.77.252.3"}  # only b listens
        async with pod_server(pods["b"], answering("b")), proxy_for(table(pods)) as port:
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
        pods = {"a": "127.77.252.2"}
        payload = bytes(range(256)) * 32 * 1024  # 8 MiB, many relay buffers long
        async with pod_server(pods["a"], echo), proxy_for(table(pods)) as port:
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
        pods = {"a": "127.77.252.2"}
        gate = asyncio.Event()
        received = bytearray()

        async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await gate.wait()
            while data := await reader.read(65536):
                received.extend(data)
            writer.close()

        async with pod_server(pods["a"], stalled), proxy_for(table(pods)) as port:
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
