"""gRPC on top of the HTTP/2 connection: which method a path names, and what a handler sees.

The servicers are the ones grpcio's generated `add_*Servicer_to_server` functions register; they
register into a `Registry` here instead of a grpcio server, so the protocol adapters stay as
they are and only the transport changes. Handlers get a `CallContext` with the part of
`grpc.aio.ServicerContext` they use (abort, codes and details, metadata, deadline).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import grpc

from . import hpack

Header = hpack.Header
MESSAGE_PREFIX = 5  # compressed flag and a 32-bit length before each message


@dataclasses.dataclass(frozen=True)
class Method:
    """A unary-unary method: the servicer's coroutine and its (de)serializers."""

    path: str
    behavior: Callable[[Any, Any], Any]
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]


@dataclasses.dataclass(frozen=True)
class _Details:
    """What grpcio's GenericRpcHandler.service() is asked about: the method's path."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


class Registry:
    """Where generated `add_*Servicer_to_server(servicer, registry)` functions put handlers."""

    def __init__(self) -> None:
        self._methods: dict[str, Method | None] = {}
        self._generic: list[Any] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        for name, handler in handlers.items():
            self._methods[f"/{service}/{name}"] = _method(f"/{service}/{name}", handler)

    def lookup(self, path: str) -> Method | None:
        """The unary method at path; None for an unknown or streaming one."""
        if path in self._methods:
            return self._methods[path]
        found: Method | None = None
        for generic in self._generic:
            handler = generic.service(_Details(path))
            if handler is not None:
                found = _method(path, handler)
                break
        if len(self._methods) < 4096:  # unknown paths are remembered too, up to a bound
            self._methods[path] = found
        return found


def _method(path: str, handler: Any) -> Method | None:
    if handler.request_streaming or handler.response_streaming or handler.unary_unary is None:
        return None
    return Method(
        path,
        handler.unary_unary,
        handler.request_deserializer or (lambda raw: raw),
        handler.response_serializer or (lambda message: message),
    )


class CallError(Exception):
    """Raised by CallContext.abort: the call ends with this status."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def status_number(code: Any) -> int:
    """A grpc.StatusCode (whose value is (number, name)) or a plain number."""
    if isinstance(code, grpc.StatusCode):
        return int(code.value[0])
    return int(code)


class CallContext:
    """The handler's view of its call (the subset of grpc.aio.ServicerContext it uses)."""

    __slots__ = ("_deadline", "_headers", "_peer", "code", "details")

    def __init__(self, headers: list[Header], deadline: float | None, peer: str) -> None:
        self._headers = headers
        self._deadline = deadline
        self._peer = peer
        self.code: int | None = None
        self.details = ""

    async def abort(self, code: Any, details: str = "") -> NoReturn:
        raise CallError(status_number(code), details)

    def set_code(self, code: Any) -> None:
        self.code = status_number(code)

    def set_details(self, details: str) -> None:
        self.details = details

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        out: list[tuple[str, str | bytes]] = []
        for name, value in self._headers:
            if name.startswith(b":") or name in _TRANSPORT_HEADERS:
                continue
            key = name.decode("ascii", "replace")
            if key.endswith("-bin"):  # binary values travel base64-coded, padding optional
                try:
                    out.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
                except binascii.Error:
                    continue
            else:
                out.append((key, value.decode("latin-1")))
        return tuple(out)

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def peer(self) -> str:
        return self._peer


_TRANSPORT_HEADERS = frozenset(
    (b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding")
)

# grpc-timeout units (gRPC over HTTP/2, "Timeout").
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def parse_timeout(value: bytes) -> float | None:
    """Seconds from a grpc-timeout value (at most 8 digits and a unit); None if malformed."""
    digits, unit = value[:-1], value[-1:]
    if not (0 < len(digits) <= 8) or not digits.isdigit() or unit not in _TIMEOUT_UNITS:
        return None
    return int(digits) * _TIMEOUT_UNITS[unit]


DECOMPRESSORS = ("gzip", "deflate")


def too_large(limit: int) -> str:
    return f"received message larger than max ({limit} bytes)"


def read_request(
    registry: Registry, headers: list[Header], body: bytes, max_message: int
) -> tuple[Method, bytes, float | None]:
    """The method, message and timeout (seconds) a call asks for; CallError for what gRPC
    refuses, with the status grpcio gives it."""
    path, content_type, encoding, timeout = _request_head(headers)
    if not content_type.startswith(b"application/grpc"):
        raise CallError(3, f"content-type {content_type.decode('latin-1')!r} is not gRPC")
    method = registry.lookup(path.decode("latin-1"))
    if method is None:
        raise CallError(12, f"Method not found: {path.decode('latin-1')}")
    if len(body) < MESSAGE_PREFIX:
        raise CallError(13, "the request carries no message")
    compressed, length = body[0], int.from_bytes(body[1:MESSAGE_PREFIX], "big")
    if len(body) != MESSAGE_PREFIX + length:
        raise CallError(13, "a unary call carries exactly one message")
    message = body[MESSAGE_PREFIX:]
    if compressed:
        name = encoding.decode("latin-1")
        if name not in DECOMPRESSORS:
            raise CallError(12, f"message compressed with unsupported encoding {name!r}")
        inflated = decompress(name, message, max_message)
        if inflated is None:
            raise CallError(8, too_large(max_message))
        message = inflated
    return method, message, timeout


def _request_head(headers: list[Header]) -> tuple[bytes, bytes, bytes, float | None]:
    path = content_type = b""
    encoding = b"identity"
    timeout: float | None = None
    post = False
    for name, value in headers:
        if name == b":path":
            path = value
        elif name == b":method":
            post = value == b"POST"
        elif name == b"content-type":
            content_type = value
        elif name == b"grpc-timeout":
            timeout = parse_timeout(value)
            if timeout is None:
                raise CallError(13, f"malformed grpc-timeout {value!r}")
        elif name == b"grpc-encoding":
            encoding = value
    if not post:
        raise CallError(13, "gRPC calls are POST requests")
    return path, content_type, encoding, timeout


def decompress(encoding: str, data: bytes, limit: int) -> bytes | None:
    """A compressed message inflated to at most limit bytes; None when it would go past it."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        return None
    return out


def percent_encode(message: str) -> bytes:
    """grpc-message's encoding: printable ASCII but '%' as is, everything else %XX of UTF-8."""
    out = bytearray()
    for byte in message.encode("utf-8", "replace"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)
