"""A big JSON body is parsed off the event loop: other connections are answered meanwhile.

Deterministic by order, not by timing thresholds. Connection A sends a ~60 MB predict body for
a model that does not exist, so its 404 goes out right after its parse. Once the server's
kernel has taken every byte of it (the client's send queue is empty), connection B sends a
small predict. With the parse on the event loop, B could not be read until A's parse ended and
A's 404 would come first; with the parse on a worker thread (the C scanner reading numbers
without the GIL), B's answer comes back while A is still being parsed.
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import ServerFactory
from modelship_server.protocols import json_body
from server_process import ServerProcess

NUMBERS = 5_000_000  # about 60 MB of JSON: a few hundred ms of parsing


@pytest.fixture(scope="module")
def big_body_server(testdata: Path, server_factory: ServerFactory) -> ServerProcess:
    return server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata}/saved_model_half_plus_two_cpu",
        f"--rest_api_max_body_bytes={128 << 20}",
    )


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return status, rest[:length]


def _unsent(sock: socket.socket) -> int:
    """Bytes in the send queue not yet acknowledged by the server's kernel."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", buf)[0])


BODIES = {
    "v1": (
        "/v1/models/absent:predict",
        "/v1/models/half_plus_two:predict",
        lambda data: {"instances": data},
        {"instances": [1.0, 2.0]},
    ),
    "v2": (
        "/v2/models/absent/infer",
        "/v2/models/half_plus_two/infer",
        lambda data: {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [NUMBERS], "data": data}]
        },
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [1.0, 2.0]}]},
    ),
}


@pytest.mark.parametrize("protocol", sorted(BODIES))
def test_small_request_answered_while_a_big_body_is_parsed(
    big_body_server: ServerProcess, protocol: str
) -> None:
    if not json_body.accelerated():
        pytest.skip("without the C extension the parse holds the GIL (orjson) wherever it runs")
    big_path, small_path, wrap, small_body = BODIES[protocol]
    data = np.random.default_rng(0).random(NUMBERS)
    big = _request(big_path, orjson.dumps(wrap(data), option=orjson.OPT_SERIALIZE_NUMPY))
    assert len(big) > 50 << 20
    small = _request(small_path, orjson.dumps(small_body))
    address = ("127.0.0.1", big_body_server.rest_port)
    with socket.create_connection(address) as a, socket.create_connection(address) as b:
        # B is connected and warm before A starts.
        b.sendall(small)
        assert _read_response(b)[0] == 200
        a.sendall(big)
        deadline = time.monotonic() + 60
        while _unsent(a) and time.monotonic() < deadline:
            time.sleep(0.001)
        b.sendall(small)
        readable, _, _ = select.select([a, b], [], [], 60)
        assert readable, "no answer in 60 s"
        first = "small" if b in readable and a not in readable else "big or both"
        small_status, _ = _read_response(b)
        big_status, big_reply = _read_response(a)
    assert small_status == 200
    assert big_status == 404, big_reply[:200]
    assert first == "small", "the small request waited for the big body's parse"
