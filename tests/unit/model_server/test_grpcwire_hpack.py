"""HPACK decoding against python-hyper's encoder (another implementation) and RFC 7541's
examples; the small pure helpers of the gRPC layer."""

from __future__ import annotations

import hpack as hyper_hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelship_server.grpcwire import calls, huffman
from modelship_server.grpcwire.hpack import (
    Decoder,
    HeaderListSizeError,
    HpackError,
    encode_int,
    literal,
)

names = st.sampled_from(
    [b":path", b"content-type", b"grpc-timeout", b"user-agent", b"x-custom", b"te"]
) | st.binary(min_size=1, max_size=30).map(lambda b: b.lower())
values = st.binary(max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(st.lists(st.tuples(names, values), max_size=12), min_size=1, max_size=6),
    huffman_coded=st.booleans(),
    table_size=st.sampled_from([0, 256, 4096]),
)
def test_decodes_what_another_encoder_writes(
    blocks: list[list[tuple[bytes, bytes]]], huffman_coded: bool, table_size: int
) -> None:
    """Block after block on one connection, so the dynamic table's evictions are exercised."""
    encoder = hyper_hpack.Encoder()
    encoder.header_table_size = table_size  # announced with a size update in the next block
    decoder = Decoder(max_list_size=1 << 20)
    for headers in blocks:
        block = encoder.encode(headers, huffman=huffman_coded)
        assert decoder.decode(block) == headers


@given(st.binary(max_size=200))
def test_huffman_round_trip(data: bytes) -> None:
    coded = huffman.encode(data)
    assert huffman.decode(coded) == data
    if data:  # the other decoder refuses an empty Huffman string
        block = b"\x00\x01a" + encode_int(len(coded), 7, 0x80) + coded
        assert hyper_hpack.Decoder().decode(block, raw=True) == [(b"a", data)]


def test_rfc7541_request_examples_with_huffman() -> None:
    """Appendix C.4: three requests on one connection, Huffman-coded, sharing the table."""
    decoder = Decoder()
    first = bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")
    assert decoder.decode(first) == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ]
    second = bytes.fromhex("828684be5886a8eb10649cbf")
    assert decoder.decode(second)[-1] == (b"cache-control", b"no-cache")
    third = bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")
    assert decoder.decode(third) == [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/index.html"),
        (b":authority", b"www.example.com"),
        (b"custom-key", b"custom-value"),
    ]


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # index 0
        b"\xff\xff\x7f",  # past both tables
        b"\x41",  # literal name index, value missing
        b"\x00\x85ab",  # string longer than the block
        b"\x00\x84\xff\xff\xff\xff\x00",  # EOS inside a Huffman string
        b"\x00\x81\x00\x00",  # Huffman padding of zeros
        b"\x82\x3f\xe1\x1f",  # a size update after a field
        b"\x3f\xe2\x1f",  # a size update over the announced 4096
        b"\xff\xff\xff\xff\xff\xff\xff",  # an integer that never ends
    ],
)
def test_malformed_blocks_are_refused(block: bytes) -> None:
    with pytest.raises(HpackError):
        Decoder().decode(block)


def test_decoded_size_is_bounded_before_it_is_built() -> None:
    """A small block naming one big table entry many times (an "HPACK bomb")."""
    encoder = hyper_hpack.Encoder()
    big = (b"x-big", b"v" * 3000)
    block = encoder.encode([big] * 50)
    assert len(block) < 3300
    with pytest.raises(HeaderListSizeError):
        Decoder(max_list_size=65536).decode(block)


def test_literal_is_read_by_another_decoder() -> None:
    block = literal(b"grpc-status", b"0") + literal(b"grpc-message", b"bad%20input")
    assert hyper_hpack.Decoder().decode(block, raw=True) == [
        (b"grpc-status", b"0"),
        (b"grpc-message", b"bad%20input"),
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"1H", 3600.0), (b"2M", 120.0), (b"3S", 3.0), (b"250m", 0.25), (b"5u", 5e-6)],
)
def test_grpc_timeout(value: bytes, seconds: float) -> None:
    assert calls.parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"123456789S", b"1.5S", b"10x", b"-1S"])
def test_grpc_timeout_malformed(value: bytes) -> None:
    assert calls.parse_timeout(value) is None


def test_grpc_message_percent_encoding() -> None:
    assert calls.percent_encode("50% «done»\n") == b"50%25 %C2%ABdone%C2%BB%0A"
