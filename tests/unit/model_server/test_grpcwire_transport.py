"""The gRPC transport over real TCP, spoken to by two HTTP/2 implementations we did not write:
grpcio's client, and python-hyper's h2 driven frame by frame for what no gRPC client sends.

The service is a small echo of protobuf's BytesValue registered through grpcio's generic
handler, so these tests need neither TensorFlow nor the v2 protos (tritonclient, imported by
other tests in the same process, registers the same `inference.*` names); the real servicers
run over the same transport in tests/integration/model_server/.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from google.protobuf.wrappers_pb2 import BytesValue
from modelship_server.grpcwire.calls import Registry
from modelship_server.grpcwire.server import GrpcServer

SERVICE = "test.Echo"
INFER = f"/{SERVICE}/Echo"
MAX_MESSAGE = 256 * 1024
READ_TIMEOUT = 1.0


class EchoServicer:
    """Echo answers with the payload after "kind|": kind "slow" waits until cancelled, "nap"
    half a second, "fail" raises, "missing" aborts NOT_FOUND."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.metadata: tuple[tuple[str, Any], ...] = ()

    async def echo(self, request: BytesValue, context: Any) -> BytesValue:
        self.metadata = context.invocation_metadata()
        kind, _, payload = request.value.partition(b"|")
        if kind == b"slow":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if kind == b"nap":
            await asyncio.sleep(0.5)
        if kind == b"fail":
            raise RuntimeError("boom")
        if kind == b"missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no model «missing»")
        return BytesValue(value=payload)

    def unimplemented(self, request: BytesValue, context: Any) -> BytesValue:
        # What grpcio's generated servicer base does for a method it does not implement.
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    def handlers(self) -> Any:
        def unary(behavior: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                behavior,
                request_deserializer=BytesValue.FromString,
                response_serializer=BytesValue.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Echo": unary(self.echo),
                "Unimplemented": unary(self.unimplemented),
                "Stream": grpc.unary_stream_rpc_method_handler(self.echo),
            },
        )


class Served:
    def __init__(self, server: GrpcServer, port: int, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.port = port
        self.loop = loop

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)


@pytest.fixture
def servicer() -> EchoServicer:
    return EchoServicer()


@pytest.fixture
def served(servicer: EchoServicer) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    registry = Registry()
    registry.add_generic_rpc_handlers((servicer.handlers(),))
    server = GrpcServer(registry, MAX_MESSAGE, read_timeout=READ_TIMEOUT)
    port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(10)
    served = Served(server, port, loop)
    yield served
    served.run(server.close(None))
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _infer(kind: str, payload: bytes) -> bytes:
    return BytesValue(value=kind.encode() + b"|" + payload).SerializeToString()  # type: ignore[no-any-return]


def _framed(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", int(compressed), len(message)) + message


class Client:
    """python-hyper's h2 as a client on a plain socket, one call at a time or several."""

    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.responses: dict[int, dict[str, Any]] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.pings: list[bytes] = []
        self.auto_ack = True

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path: str = INFER, extra: tuple[tuple[str, str], ...] = ()) -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *extra,
        ]
        self.conn.send_headers(stream, headers)
        self.responses[stream] = {"data": b"", "headers": {}, "trailers": {}, "reset": None}
        self.flush()
        return stream

    def send(self, stream: int, body: bytes, end: bool = True) -> None:
        """Send within flow control, reading the server's frames whenever the window is shut."""
        while body:
            window = min(
                self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size
            )
            if self.responses[stream]["reset"] is not None or self.done(stream):
                return
            if window <= 0:
                self.read()
                continue
            chunk, body = body[:window], body[window:]
            self.conn.send_data(stream, chunk, end_stream=end and not body)
            self.flush()

    def call(self, message: bytes, path: str = INFER, **kw: Any) -> dict[str, Any]:
        stream = self.start(path, **kw)
        self.send(stream, _framed(message))
        return self.wait(stream)

    def done(self, stream: int) -> bool:
        response = self.responses[stream]
        return bool(response["trailers"]) or response["reset"] is not None

    def wait(self, stream: int, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.done(stream):
            assert time.monotonic() < deadline, f"no answer on stream {stream}"
            self.read()
        return self.responses[stream]

    def read(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        for event in self.conn.receive_data(data):
            self._event(event)
        self.flush()

    def _event(self, event: Any) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.responses[event.stream_id]["headers"] = dict(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            self.responses[event.stream_id]["trailers"] = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.responses[event.stream_id]["data"] += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.responses[event.stream_id]["reset"] = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings.append(event.ping_data)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.responses:
            response = self.responses[event.stream_id]
            # A Trailers-Only answer: the status arrives in the first and only HEADERS.
            if not response["trailers"] and b"grpc-status" in response["headers"]:
                response["trailers"] = response["headers"]

    def close(self) -> None:
        self.sock.close()


def _status(response: dict[str, Any]) -> tuple[int, str]:
    trailers = response["trailers"]
    return int(trailers[b"grpc-status"]), trailers.get(b"grpc-message", b"").decode()


def _message(response: dict[str, Any]) -> bytes:
    data = response["data"]
    compressed, length = struct.unpack(">BI", data[:5])
    assert compressed == 0
    assert len(data) == 5 + length
    return BytesValue.FromString(data[5:]).value  # type: ignore[no-any-return]


@pytest.fixture
def client(served: Served) -> Iterator[Client]:
    c = Client(served.port)
    yield c
    c.close()


# -- grpcio's client ----------------------------------------------------------------------


def _stub(channel: grpc.Channel, method: str = "Echo") -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/{method}",
        request_serializer=BytesValue.SerializeToString,
        response_deserializer=BytesValue.FromString,
    )


def _request(kind: str, payload: bytes = b"") -> BytesValue:
    return BytesValue(value=kind.encode() + b"|" + payload)


def test_grpcio_calls_with_metadata_and_gzip(served: Served, servicer: EchoServicer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        echo = _stub(channel)
        request = _request("m", b"x" * 100_000)
        response = echo(request, metadata=[("tenant", "a"), ("trace-bin", b"\x00\x01")])
        assert response.value == b"x" * 100_000
        assert ("tenant", "a") in servicer.metadata
        assert ("trace-bin", b"\x00\x01") in servicer.metadata
        assert echo(request, compression=grpc.Compression.Gzip).value == b"x" * 100_000


def test_grpcio_statuses(served: Served) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        echo = _stub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            echo(_request("missing"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert missing.value.details() == "no model «missing»"
        with pytest.raises(grpc.RpcError) as failed:
            echo(_request("fail"))
        assert failed.value.code() == grpc.StatusCode.UNKNOWN
        for method in ("Unimplemented", "Stream", "NoSuchMethod"):
            with pytest.raises(grpc.RpcError) as unknown:
                _stub(channel, method)(_request("m"))
            assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED, method
        with pytest.raises(grpc.RpcError) as big:
            echo(_request("m", b"y" * MAX_MESSAGE))
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert echo(_request("m", b"y" * 10)).value == b"y" * 10


def test_grpcio_deadline_cancels_the_handler(served: Served, servicer: EchoServicer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        with pytest.raises(grpc.RpcError) as late:
            _stub(channel)(_request("slow"), timeout=0.3)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert servicer.cancelled.wait(5)


def test_many_concurrent_calls_on_one_connection(served: Served) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        echo = _stub(channel)
        futures = [echo.future(_request("m", str(i).encode() * 50)) for i in range(300)]
        for i, future in enumerate(futures):
            assert future.result(timeout=30).value == str(i).encode() * 50


# -- frame by frame -------------------------------------------------------------------------


def test_server_deadline_from_grpc_timeout(client: Client, servicer: EchoServicer) -> None:
    started = time.monotonic()
    response = client.call(_infer("slow", b""), extra=(("grpc-timeout", "200m"),))
    assert _status(response) == (4, "Deadline Exceeded")
    assert time.monotonic() - started < 5
    assert servicer.cancelled.is_set()
    assert _status(client.call(_infer("m", b"ok")))[0] == 0


def test_refusals_name_the_problem_and_the_connection_goes_on(client: Client) -> None:
    assert _status(client.call(b"", path="/no.Such/Method"))[0] == 12
    bad_timeout = client.call(_infer("m", b""), extra=(("grpc-timeout", "soon"),))
    assert _status(bad_timeout)[0] == 13
    assert "grpc-timeout" in _status(bad_timeout)[1]
    zipped = _framed(gzip.compress(_infer("m", b"z")), compressed=True)
    stream = client.start(extra=(("grpc-encoding", "snappy"),))
    client.send(stream, zipped)
    assert _status(client.wait(stream))[0] == 12
    stream = client.start(extra=(("grpc-encoding", "gzip"),))
    client.send(stream, zipped)
    assert _message(client.wait(stream)) == b"z"
    # Two messages where a unary call takes one; a message cut short; no message at all.
    stream = client.start()
    client.send(stream, _framed(_infer("m", b"1")) + _framed(_infer("m", b"2")))
    assert _status(client.wait(stream))[0] == 13
    stream = client.start()
    client.send(stream, _framed(_infer("m", b"1"))[:-1])
    assert _status(client.wait(stream))[0] == 13
    stream = client.start()
    client.conn.end_stream(stream)
    client.flush()
    assert _status(client.wait(stream))[0] == 13
    # Not a protobuf message.
    assert _status(client.call(b"\xff\xff\xff"))[0] == 13
    assert _message(client.call(_infer("m", b"still here"))) == (b"still here")


def test_gzip_bomb_is_refused(client: Client) -> None:
    bomb = gzip.compress(b"\0" * (MAX_MESSAGE * 8))
    assert len(bomb) < MAX_MESSAGE
    stream = client.start(extra=(("grpc-encoding", "gzip"),))
    client.send(stream, _framed(bomb, compressed=True))
    assert _status(client.wait(stream))[0] == 8


def test_oversized_message_stops_early_and_the_connection_goes_on(client: Client) -> None:
    stream = client.start()
    client.send(stream, _framed(_infer("m", b"a" * (MAX_MESSAGE * 3))))
    response = client.wait(stream)
    assert _status(response)[0] == 8
    assert "larger than max" in _status(response)[1]
    assert _message(client.call(_infer("m", b"next"))) == b"next"


def test_response_waits_for_a_small_client_window(served: Served) -> None:
    small = Client(served.port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    try:
        payload = bytes(range(256)) * 600  # 150 KiB back, in 1000-byte windows
        response = small.call(_infer("m", payload))
        assert _status(response)[0] == 0
        assert _message(response) == payload
    finally:
        small.close()


def test_client_reset_cancels_the_handler(client: Client, servicer: EchoServicer) -> None:
    stream = client.start()
    client.send(stream, _framed(_infer("slow", b"")))
    time.sleep(0.2)
    client.conn.reset_stream(stream)
    client.flush()
    assert servicer.cancelled.wait(5)
    assert _status(client.call(_infer("m", b"")))[0] == 0


def test_ping_is_answered(client: Client) -> None:
    client.conn.ping(b"12345678")
    client.flush()
    deadline = time.monotonic() + 5
    while not client.pings and time.monotonic() < deadline:
        client.read()
    assert client.pings == [b"12345678"]


def test_header_list_over_the_limit_fails_one_call(client: Client) -> None:
    # 20 references to one 4,000-byte entry: 80 kB decoded from a small block.
    big = ("x-big", "v" * 4000)
    stream = client.start(extra=(big,) * 20)
    client.send(stream, _framed(_infer("m", b"")))
    assert _status(client.wait(stream))[0] == 8
    assert _status(client.call(_infer("m", b"after")))[0] == 0


def _raw_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b""))
    return sock


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream)
        + payload
    )


def _goaway_code(sock: socket.socket) -> int:
    """Read until the server's GOAWAY; its error code."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        if data[pos + 3] == 7:
            return int.from_bytes(data[pos + 13 : pos + 17], "big")
        pos += 9 + length
    raise AssertionError("no GOAWAY before the connection closed")


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # An index past both tables: HPACK cannot decode it (COMPRESSION_ERROR).
        (_frame(1, 0x5, 1, b"\xff\xff\x7f"), 0x9),
        # Huffman with the EOS symbol inside the string.
        (_frame(1, 0x5, 1, b"\x00\x84\xff\xff\xff\xff\x00"), 0x9),
        # A frame over the 1 MiB SETTINGS_MAX_FRAME_SIZE we announced.
        (struct.pack(">I", 2 << 20)[1:] + b"\x00\x00\x00\x00\x00\x01", 0x6),
        # DATA on a stream never opened; HEADERS on an even stream; PING of 3 bytes.
        (_frame(0, 0, 5, b"x"), 0x1),
        (_frame(1, 0x5, 2, b"\x83"), 0x1),
        (_frame(6, 0, 0, b"abc"), 0x1),
        # A header block cut by another frame; WINDOW_UPDATE overflowing the window.
        (_frame(1, 0x1, 1, b"\x83") + _frame(6, 0, 0, b"12345678"), 0x1),
        (_frame(8, 0, 0, struct.pack(">I", 0x7FFFFFFF)), 0x3),
    ],
    ids=[
        "hpack-index",
        "huffman-eos",
        "frame-size",
        "idle-data",
        "even-stream",
        "ping-size",
        "interrupted-headers",
        "window-overflow",
    ],
)
def test_protocol_errors_close_one_connection_only(
    served: Served, frames: bytes, code: int
) -> None:
    sock = _raw_connection(served.port)
    try:
        sock.sendall(frames)
        assert _goaway_code(sock) == code
    finally:
        sock.close()
    fresh = Client(served.port)
    try:
        assert _status(fresh.call(_infer("m", b"")))[0] == 0
    finally:
        fresh.close()


def test_not_http2_is_closed(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _goaway_code(sock) == 0x1


def test_drain_finishes_calls_and_refuses_new_ones(served: Served) -> None:
    target = f"127.0.0.1:{served.port}"
    with grpc.insecure_channel(target) as channel:
        echo = _stub(channel)
        assert echo(_request("m", b"y")).value == b"y"
        busy = echo.future(_request("nap", b"begun"))
        time.sleep(0.2)
        served.loop.call_soon_threadsafe(served.server.stop_accepting)
        # The call begun before the drain still completes (GOAWAY lets it finish).
        assert busy.result(timeout=10).value == b"begun"
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            _stub(channel)(_request("m"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_request_must_arrive_in_time(client: Client, served: Served) -> None:
    stream = client.start()
    client.send(stream, _framed(_infer("m", b"x" * 100))[:50], end=False)
    started = time.monotonic()
    response = client.wait(stream)
    assert _status(response)[0] == 4
    assert "within 1 s" in _status(response)[1]
    assert time.monotonic() - started < READ_TIMEOUT * 3
    assert _status(client.call(_infer("m", b"")))[0] == 0  # the connection goes on
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as silent:
        silent.settimeout(READ_TIMEOUT * 5)
        data = silent.recv(65536)  # our SETTINGS, then the close: no preface came
        while data:
            data = silent.recv(65536)
