"""One HTTP/2 connection carrying unary gRPC calls (RFC 9113; gRPC over HTTP/2).

The server side of what gRPC clients send: a stream per call, its headers, one
length-prefixed message in DATA frames, then the response as HEADERS, DATA and trailers.
Flow control both ways, SETTINGS, PING, GOAWAY and RST_STREAM are handled; server push and
priorities are not used. Every call runs as a task on the event loop, so one connection
carries many calls at once.

Memory stays bounded: the connection's receive window is the most a peer may have sent and not
yet had consumed, a message over the limit ends its call with RESOURCE_EXHAUSTED at once, and
header blocks are capped before and after decoding.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
import time
from collections.abc import Callable
from typing import Protocol, cast

from . import calls, frames, hpack
from .frames import H2ConnectionError, StreamError

log = logging.getLogger("modelship_server.grpc")

MAX_CONCURRENT_STREAMS = 1000
MAX_HEADER_BLOCK = 65536  # encoded bytes of one header block, CONTINUATIONs included
MAX_HEADER_LIST = 65536  # decoded, as SETTINGS_MAX_HEADER_LIST_SIZE announces
OUR_FRAME_SIZE = 1 << 20  # the largest frame we accept (SETTINGS_MAX_FRAME_SIZE)
STREAM_WINDOW = 1 << 20

_OK_HEADERS = b"\x88" + hpack.literal_indexed_name(31, b"application/grpc")  # :status 200
_OK_TRAILERS = hpack.literal(b"grpc-status", b"0")
_PREFIX = struct.Struct(">BI")
_U32 = struct.Struct(">I")


class _Stream:
    __slots__ = (
        "chunks",
        "done",
        "ended_remote",
        "headers",
        "id",
        "pending",
        "received",
        "send_window",
        "started",
        "task",
        "timed_out",
        "trailers",
        "unacked",
    )

    def __init__(
        self, stream_id: int, headers: list[hpack.Header], send_window: int, started: float
    ) -> None:
        self.id = stream_id
        self.started = started  # on the loop's clock: the request must arrive within a limit
        self.headers = headers
        self.chunks: list[bytes] = []
        self.received = 0
        self.unacked = 0  # bytes received on the stream not yet returned to the peer's window
        self.send_window = send_window
        self.pending = memoryview(b"")  # response DATA waiting for window (sliced, not copied)
        self.trailers = b""  # sent once pending is out
        self.task: asyncio.Task[None] | None = None
        self.ended_remote = False
        self.done = False
        self.timed_out = False


def _unpadded(payload: bytes) -> bytes:
    if not payload or payload[0] >= len(payload):
        raise H2ConnectionError(frames.PROTOCOL_ERROR, "bad DATA padding")
    return payload[1 : len(payload) - payload[0]]


class Listener(Protocol):
    """What a connection needs from the server that accepted it (server.GrpcServer)."""

    registry: calls.Registry
    max_message: int
    connection_window: int
    connections: set[H2Connection]
    draining: bool

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...


class H2Connection(asyncio.Protocol):
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.registry = server.registry
        self.max_message = server.max_message
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._buffer = bytearray()
        self._preface = False
        self._decoder = hpack.Decoder(max_list_size=MAX_HEADER_LIST)
        self.streams: dict[int, _Stream] = {}
        self._last_stream = 0
        self._header_stream = 0  # a header block in progress (CONTINUATION expected)
        self._header_flags = 0
        self._header_block = bytearray()
        self._peer_window = frames.DEFAULT_WINDOW  # SETTINGS_INITIAL_WINDOW_SIZE of the peer
        self._peer_frame = frames.DEFAULT_FRAME_SIZE
        self._send_window = frames.DEFAULT_WINDOW  # connection-level, toward the peer
        self._recv_window = server.connection_window  # connection-level, what we granted
        self._recv_unacked = 0
        self._buffered = 0  # request bytes held for calls whose message is not whole yet
        self._blocked: dict[int, _Stream] = {}  # streams whose response waits for window
        self._out: list[bytes] = []
        self._goaway = False
        self._closing = False
        self._handlers: dict[int, Callable[[int, int, bytes], None]] = {
            frames.DATA: self._on_data,
            frames.HEADERS: self._on_headers,
            frames.CONTINUATION: self._on_continuation,
            frames.SETTINGS: self._on_settings,
            frames.WINDOW_UPDATE: self._on_window_update,
            frames.PING: self._on_ping,
            frames.RST_STREAM: self._on_reset,
            frames.GOAWAY: self._on_goaway,
            frames.PRIORITY: self._on_priority,
            frames.PUSH_PROMISE: self._on_push_promise,
        }

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._opened = self.server.loop.time()
        peer = transport.get_extra_info("peername")
        self.peer = f"ipv4:{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.server.connections.add(self)
        grant = self.server.connection_window - frames.DEFAULT_WINDOW
        self.transport.write(
            frames.settings(
                {
                    frames.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                    frames.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                    frames.MAX_FRAME_SIZE: OUR_FRAME_SIZE,
                    frames.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
                    frames.ENABLE_PUSH: 0,
                }
            )
            + (frames.window_update(0, grant) if grant > 0 else b"")
        )
        if self.server.draining:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._closing = True
        for stream in self.streams.values():
            if stream.task and not stream.task.done():
                stream.task.cancel()
        self.streams.clear()
        self._blocked.clear()

    def pause_writing(self) -> None:
        # The peer does not read its responses: stop reading its requests until it does.
        if self.transport:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport and not self._closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        # A frame split over reads waits in a bytearray, so a large one is not copied again
        # at every read; most reads hold whole frames and are parsed where they lie.
        buffer: bytes | bytearray
        if self._buffer:
            self._buffer += data
            buffer = self._buffer
        else:
            buffer = data
        try:
            if not self._preface:
                stripped = self._strip_preface(buffer)
                if stripped is None:
                    return
                buffer = stripped
            pos = self._frames(buffer)
        except H2ConnectionError as exc:
            self._fail(exc.code, str(exc))
            return
        if pos >= len(buffer):
            self._buffer = bytearray()
        elif buffer is self._buffer:
            del self._buffer[:pos]
        else:
            self._buffer = bytearray(buffer[pos:])

    def _strip_preface(self, buffer: bytes | bytearray) -> bytes | bytearray | None:
        """What follows the client preface; None while it is still arriving."""
        if len(buffer) < len(frames.PREFACE):
            if not frames.PREFACE.startswith(buffer):
                raise H2ConnectionError(frames.PROTOCOL_ERROR, "not an HTTP/2 preface")
            self._buffer = bytearray(buffer)
            return None
        if not buffer.startswith(frames.PREFACE):
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "not an HTTP/2 preface")
        self._preface = True
        return buffer[len(frames.PREFACE) :]

    def _frames(self, buffer: bytes | bytearray) -> int:
        """Handle every whole frame in buffer; the offset where the rest begins."""
        pos, end = 0, len(buffer)
        with memoryview(buffer) as view:
            while end - pos >= frames.HEADER_SIZE and not self._closing:
                length = (buffer[pos] << 16) | (buffer[pos + 1] << 8) | buffer[pos + 2]
                if length > OUR_FRAME_SIZE:
                    raise H2ConnectionError(frames.FRAME_SIZE_ERROR, "frame over MAX_FRAME_SIZE")
                stop = pos + frames.HEADER_SIZE + length
                if stop > end:
                    break
                kind, flags = buffer[pos + 3], buffer[pos + 4]
                stream = _U32.unpack_from(buffer, pos + 5)[0] & 0x7FFFFFFF
                payload = bytes(view[pos + frames.HEADER_SIZE : stop])
                pos = stop
                try:
                    self._frame(kind, flags, stream, payload)
                except StreamError as exc:
                    self._reset(exc.stream, exc.code)
        return pos

    def eof_received(self) -> bool | None:
        return None  # close the transport

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if self._header_stream and (kind != frames.CONTINUATION or stream != self._header_stream):
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "header block interrupted")
        handler = self._handlers.get(kind)
        if handler is not None:  # unknown frame types are ignored (5.5)
            handler(flags, stream, payload)

    def _on_continuation(self, flags: int, stream: int, payload: bytes) -> None:
        if not self._header_stream:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        self._header_block += payload
        if len(self._header_block) > MAX_HEADER_BLOCK:
            raise H2ConnectionError(frames.ENHANCE_YOUR_CALM, "header block too large")
        if flags & frames.END_HEADERS:
            self._header_stream = 0
            self._headers_complete(stream, self._header_flags, bytes(self._header_block))

    def _on_ping(self, flags: int, stream: int, payload: bytes) -> None:
        if stream or len(payload) != 8:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "bad PING")
        if not flags & frames.ACK:
            self._write(frames.frame(frames.PING, frames.ACK, 0, payload))

    def _on_goaway(self, _flags: int, _stream: int, _payload: bytes) -> None:
        self._goaway = True
        self._maybe_close()

    def _on_priority(self, _flags: int, stream: int, payload: bytes) -> None:
        if not stream or len(payload) != 5:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "bad PRIORITY")

    def _on_push_promise(self, _flags: int, _stream: int, _payload: bytes) -> None:
        raise H2ConnectionError(frames.PROTOCOL_ERROR, "PUSH_PROMISE from a client")

    def _on_settings(self, flags: int, stream: int, payload: bytes) -> None:
        if stream:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & frames.ACK:
            if payload:
                raise H2ConnectionError(frames.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(frames.FRAME_SIZE_ERROR, "SETTINGS of a bad length")
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == frames.INITIAL_WINDOW_SIZE:
                if value > frames.MAX_WINDOW:
                    raise H2ConnectionError(frames.FLOW_CONTROL_ERROR, "window over 2^31-1")
                delta = value - self._peer_window
                self._peer_window = value
                for open_stream in self.streams.values():
                    open_stream.send_window += delta
            elif key == frames.MAX_FRAME_SIZE:
                if not frames.DEFAULT_FRAME_SIZE <= value <= frames.MAX_FRAME_SIZE_LIMIT:
                    raise H2ConnectionError(frames.PROTOCOL_ERROR, "bad MAX_FRAME_SIZE")
                self._peer_frame = value
            elif key == frames.ENABLE_PUSH and value > 1:
                raise H2ConnectionError(frames.PROTOCOL_ERROR, "bad ENABLE_PUSH")
        self._write(frames.frame(frames.SETTINGS, frames.ACK, 0))
        self._flush_blocked()

    def _on_window_update(self, _flags: int, stream: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError(frames.FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if not stream:
            if not increment:
                raise H2ConnectionError(frames.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > frames.MAX_WINDOW:
                raise H2ConnectionError(frames.FLOW_CONTROL_ERROR, "window over 2^31-1")
        else:
            found = self.streams.get(stream)
            if not increment:
                raise StreamError(stream, frames.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            if found is None:
                return  # a stream we have finished: updates may still be on their way
            found.send_window += increment
            if found.send_window > frames.MAX_WINDOW:
                raise StreamError(stream, frames.FLOW_CONTROL_ERROR, "window over 2^31-1")
        self._flush_blocked()

    def _on_headers(self, flags: int, stream: int, payload: bytes) -> None:
        if not stream or not stream & 1:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "HEADERS on an even stream")
        start = 0
        end = len(payload)
        if flags & frames.PADDED:
            if not payload:
                raise H2ConnectionError(frames.PROTOCOL_ERROR, "PADDED without a length")
            end -= payload[0]
            start = 1
        if flags & frames.PRIORITY_FLAG:
            start += 5
        if start > end:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "padding past the frame")
        block = payload[start:end]
        if flags & frames.END_HEADERS:
            self._headers_complete(stream, flags, block)
        else:
            if len(block) > MAX_HEADER_BLOCK:
                raise H2ConnectionError(frames.ENHANCE_YOUR_CALM, "header block too large")
            self._header_stream = stream
            self._header_flags = flags
            self._header_block = bytearray(block)

    def _headers_complete(self, stream_id: int, flags: int, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)
        except hpack.HpackError as exc:
            raise H2ConnectionError(frames.COMPRESSION_ERROR, str(exc)) from None
        except hpack.HeaderListSizeError:
            # Decoded in full, so the table stays in step: only this stream fails.
            self._last_stream = max(self._last_stream, stream_id)
            self._write(self._trailers_only(stream_id, 8, "header list too large"))
            return
        if stream_id <= self._last_stream:
            if stream_id in self.streams:
                raise StreamError(stream_id, frames.PROTOCOL_ERROR, "trailers from a client")
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "stream id not increasing")
        self._last_stream = stream_id
        if self._goaway or self.server.draining:
            self._write(frames.rst_stream(stream_id, frames.REFUSED_STREAM))
            return
        if len(self.streams) >= MAX_CONCURRENT_STREAMS:
            self._write(frames.rst_stream(stream_id, frames.REFUSED_STREAM))
            return
        stream = _Stream(stream_id, headers, self._peer_window, self.server.loop.time())
        self.streams[stream_id] = stream
        if flags & frames.END_STREAM:
            stream.ended_remote = True
            self._start_call(stream)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise H2ConnectionError(frames.FLOW_CONTROL_ERROR, "DATA over the connection window")
        # The connection window only paces the wire; _buffered bounds what is held.
        self._consumed(size)
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream:
                raise H2ConnectionError(frames.PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a call we already answered or reset: the rest of its request is dropped
        if stream.ended_remote:
            raise StreamError(stream_id, frames.STREAM_CLOSED, "DATA after END_STREAM")
        data = _unpadded(payload) if flags & frames.PADDED else payload
        stream.received += len(data)
        self._buffered += len(data)
        if stream.received > self.max_message + calls.MESSAGE_PREFIX:
            self._refuse_body(
                stream, f"received message larger than max ({self.max_message} bytes)"
            )
            return
        if self._buffered > self.server.connection_window:
            self._refuse_body(stream, "too much request data in flight on this connection")
            return
        if data:
            stream.chunks.append(data)
        if flags & frames.END_STREAM:
            stream.ended_remote = True
            self._start_call(stream)
            return
        stream.unacked += size
        if stream.unacked >= STREAM_WINDOW // 2:
            self._write(frames.window_update(stream.id, stream.unacked))
            stream.unacked = 0

    def _refuse_body(self, stream: _Stream, message: str, code: int = 8) -> None:
        # RESOURCE_EXHAUSTED by default, as grpcio answers a message over its limit;
        # RST_STREAM NO_ERROR tells the client to stop sending the rest (8.1).
        self._finish(stream, self._trailers_only(stream.id, code, message))
        self._write(frames.rst_stream(stream.id, frames.NO_ERROR))

    def _consumed(self, size: int) -> None:
        self._recv_unacked += size
        self._return_window()

    def _return_window(self) -> None:
        if self._recv_unacked >= self.server.connection_window // 4:
            self._write(frames.window_update(0, self._recv_unacked))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0

    def _on_reset(self, _flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id or len(payload) != 4:
            raise H2ConnectionError(frames.PROTOCOL_ERROR, "bad RST_STREAM")
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream:
                raise H2ConnectionError(frames.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            return
        stream.done = True
        self._drop(stream)
        if stream.task and not stream.task.done():
            stream.task.cancel()  # the client gave up: stop the call's work
        self._maybe_close()

    # -- calls ----------------------------------------------------------------------------

    def _start_call(self, stream: _Stream) -> None:
        body = b"".join(stream.chunks) if len(stream.chunks) != 1 else stream.chunks[0]
        stream.chunks = []
        self._buffered -= stream.received
        stream.task = self.server.loop.create_task(self._call(stream, body))

    async def _call(self, stream: _Stream, body: bytes) -> None:
        timer: asyncio.TimerHandle | None = None
        context: calls.CallContext | None = None
        try:
            method, message, timeout = calls.read_request(
                self.registry, stream.headers, body, self.max_message
            )
            deadline = None
            if timeout is not None:
                deadline = time.monotonic() + timeout
                timer = self.server.loop.call_later(timeout, self._expire, stream)
            try:
                request = method.deserialize(message)
            except Exception:
                raise calls.CallError(13, "cannot parse the request message") from None
            context = calls.CallContext(stream.headers, deadline, self.peer)
            response = method.behavior(request, context)
            if inspect.isawaitable(response):
                response = await response
            if context.code:
                raise calls.CallError(context.code, context.details)
            self._respond(stream, method.serialize(response))
        except calls.CallError as exc:
            self._finish(stream, self._trailers_only(stream.id, exc.code, exc.details))
        except asyncio.CancelledError:
            if stream.timed_out and not stream.done:
                self._finish(stream, self._trailers_only(stream.id, 4, "Deadline Exceeded"))
                return
            raise
        except Exception as exc:
            if context is not None and context.code:
                # As grpcio: a handler that set a status and then raised ends with that status
                # (the generated servicer base does so for methods it does not implement).
                self._finish(stream, self._trailers_only(stream.id, context.code, context.details))
                return
            log.exception("unhandled error in gRPC call %s", stream.id)
            message_text = f"Unexpected {type(exc).__name__}"
            self._finish(stream, self._trailers_only(stream.id, 2, message_text))
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, stream: _Stream) -> None:
        if stream.task and not stream.task.done():
            stream.timed_out = True
            stream.task.cancel()

    def _trailers_only(self, stream_id: int, code: int, message: str) -> bytes:
        block = _OK_HEADERS + hpack.literal(b"grpc-status", str(code).encode())
        if message:
            block += hpack.literal(b"grpc-message", calls.percent_encode(message))
        return frames.frame(
            frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, stream_id, block
        )

    def _respond(self, stream: _Stream, payload: bytes) -> None:
        if stream.done or self._closing:
            return
        data = _PREFIX.pack(0, len(payload)) + payload
        size = len(data)
        out = [frames.frame(frames.HEADERS, frames.END_HEADERS, stream.id, _OK_HEADERS)]
        trailers = frames.frame(
            frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, stream.id, _OK_TRAILERS
        )
        if size <= self._peer_frame and size <= self._send_window and size <= stream.send_window:
            self._send_window -= size
            stream.send_window -= size
            out.append(frames.frame(frames.DATA, 0, stream.id, data))
            out.append(trailers)
            self._finish(stream, b"".join(out))
            return
        self._write(out[0])
        stream.pending = memoryview(data)
        stream.trailers = trailers
        self._blocked[stream.id] = stream
        self._flush_blocked()

    def _flush_blocked(self) -> None:
        for stream in list(self._blocked.values()):
            if self._send_window <= 0:
                return
            out = []
            while stream.pending and self._send_window > 0 and stream.send_window > 0:
                size = min(len(stream.pending), self._peer_frame, self._send_window)
                size = min(size, stream.send_window)
                out.append(frames.frame(frames.DATA, 0, stream.id, stream.pending[:size]))
                stream.pending = stream.pending[size:]
                self._send_window -= size
                stream.send_window -= size
            if not stream.pending:
                del self._blocked[stream.id]
                out.append(stream.trailers)
                self._finish(stream, b"".join(out))
            elif out:
                self._write(b"".join(out))

    def _finish(self, stream: _Stream, data: bytes) -> None:
        """Write the call's last frames; the stream is closed on our side from now on."""
        if stream.done:
            return
        stream.done = True
        self._drop(stream)
        self._write(data)
        self._maybe_close()

    def _drop(self, stream: _Stream) -> None:
        self.streams.pop(stream.id, None)
        self._blocked.pop(stream.id, None)
        if not stream.ended_remote or stream.chunks:
            self._buffered -= stream.received
            stream.chunks = []

    def _reset(self, stream_id: int, code: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.done = True
            self._drop(stream)
            if stream.task and not stream.task.done():
                stream.task.cancel()
        self._write(frames.rst_stream(stream_id, code))

    # -- connection -----------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        # Frames are gathered and sent once per turn of the event loop: the calls of one batch
        # finish together, and one send() for all their responses costs a fraction of many.
        if not self._out:
            self.server.loop.call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _fail(self, code: int, message: str) -> None:
        log.info("gRPC connection from %s closed: %s", self.peer, message)
        self._write(frames.goaway(self._last_stream, code, message.encode()[:256]))
        self._close()

    def _close(self) -> None:
        self._closing = True
        if self._out:
            self._flush()
        if self.transport is not None:
            self.transport.close()

    def _maybe_close(self) -> None:
        if (self._goaway or self.server.draining) and not self.streams:
            self._close()

    def check_deadline(self, now: float, read_timeout: float) -> None:
        """A connection must send its preface, and each call its whole request, in time; an
        established connection may stay open without calls (gRPC channels do)."""
        if not self._preface and now - self._opened > read_timeout:
            self._close()
            return
        for stream in list(self.streams.values()):
            if not stream.ended_remote and now - stream.started > read_timeout:
                self._refuse_body(
                    stream, f"request not received whole within {read_timeout:g} s", code=4
                )

    @property
    def idle(self) -> bool:
        return not self.streams

    def shutdown(self) -> None:
        """Graceful: GOAWAY now (calls already started finish), close when none are left."""
        if not self._goaway:
            self._write(frames.goaway(self._last_stream, frames.NO_ERROR))
        self._maybe_close()

    def abort(self) -> None:
        """The grace period is over: cancel what still runs and close."""
        for stream in list(self.streams.values()):
            if stream.task and not stream.task.done():
                stream.task.cancel()
            if not stream.done:
                self._finish(stream, self._trailers_only(stream.id, 14, "server shutting down"))
        self._close()
