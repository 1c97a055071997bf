"""HPACK (RFC 7541): a decoder for request headers, and the few literal encodings responses need.

Responses never use the dynamic table (every field is a literal without indexing), so the
encoder keeps no state and the peer's SETTINGS_HEADER_TABLE_SIZE never matters to it.
"""

from __future__ import annotations

from collections import deque

from . import huffman

Header = tuple[bytes, bytes]

# RFC 7541, Appendix A; index 1 is STATIC[0].
STATIC: tuple[Header, ...] = tuple(
    (name.encode(), value.encode())
    for name, value in (
        (":authority", ""),
        (":method", "GET"),
        (":method", "POST"),
        (":path", "/"),
        (":path", "/index.html"),
        (":scheme", "http"),
        (":scheme", "https"),
        (":status", "200"),
        (":status", "204"),
        (":status", "206"),
        (":status", "304"),
        (":status", "400"),
        (":status", "404"),
        (":status", "500"),
        ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"),
        ("accept-language", ""),
        ("accept-ranges", ""),
        ("accept", ""),
        ("access-control-allow-origin", ""),
        ("age", ""),
        ("allow", ""),
        ("authorization", ""),
        ("cache-control", ""),
        ("content-disposition", ""),
        ("content-encoding", ""),
        ("content-language", ""),
        ("content-length", ""),
        ("content-location", ""),
        ("content-range", ""),
        ("content-type", ""),
        ("cookie", ""),
        ("date", ""),
        ("etag", ""),
        ("expect", ""),
        ("expires", ""),
        ("from", ""),
        ("host", ""),
        ("if-match", ""),
        ("if-modified-since", ""),
        ("if-none-match", ""),
        ("if-range", ""),
        ("if-unmodified-since", ""),
        ("last-modified", ""),
        ("link", ""),
        ("location", ""),
        ("max-forwards", ""),
        ("proxy-authenticate", ""),
        ("proxy-authorization", ""),
        ("range", ""),
        ("referer", ""),
        ("refresh", ""),
        ("retry-after", ""),
        ("server", ""),
        ("set-cookie", ""),
        ("strict-transport-security", ""),
        ("transfer-encoding", ""),
        ("user-agent", ""),
        ("vary", ""),
        ("via", ""),
        ("www-authenticate", ""),
    )
)
ENTRY_OVERHEAD = 32  # bytes an entry counts beyond its name and value (4.1)

# Clients Huffman-code the same short values call after call (paths, content types, user
# agents) when they do not index them; decoding one costs microseconds, a lookup far less.
_HUFFMAN_CACHE: dict[bytes, bytes] = {}
_CACHE_ENTRIES = 1024
_CACHED_LENGTH = 64


class HpackError(ValueError):
    """A header block that cannot be decoded: a COMPRESSION_ERROR for the whole connection."""


class HeaderListSizeError(ValueError):
    """Decoded headers over the limit announced in SETTINGS_MAX_HEADER_LIST_SIZE."""


def encode_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An integer with an N-bit prefix (5.1); `first` holds the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing and with a literal name (6.2.2), no Huffman coding."""
    return b"\x00" + encode_int(len(name), 7) + name + encode_int(len(value), 7) + value


def literal_indexed_name(index: int, value: bytes) -> bytes:
    """A literal field without indexing whose name is the static table's entry `index`."""
    return encode_int(index, 4) + encode_int(len(value), 7) + value


class Decoder:
    """One connection's decoding context: its dynamic table persists from block to block."""

    def __init__(self, max_table_size: int = 4096, max_list_size: int = 65536) -> None:
        self.max_table_size = max_table_size  # what SETTINGS_HEADER_TABLE_SIZE announced
        self.max_list_size = max_list_size
        self._table_limit = max_table_size
        self._table: deque[Header] = deque()
        self._table_size = 0

    def decode(self, block: bytes) -> list[Header]:
        headers: list[Header] = []
        listed = 0
        pos, end = 0, len(block)
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed field (6.1)
                index, pos = self._int(block, pos, 7)
                header = self._entry(index)
            elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                header, pos = self._literal(block, pos, 6)
                self._add(header)
            elif byte & 0x20:  # dynamic table size update (6.3)
                if headers:
                    raise HpackError("a dynamic table size update after the first field")
                size, pos = self._int(block, pos, 5)
                if size > self.max_table_size:
                    raise HpackError(f"dynamic table size {size} over the announced maximum")
                self._table_limit = size
                self._evict(0)
                continue
            else:  # literal without indexing (6.2.2) or never indexed (6.2.3)
                header, pos = self._literal(block, pos, 4)
            listed += len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if listed > self.max_list_size:
                raise HeaderListSizeError(f"header list over {self.max_list_size} bytes")
            headers.append(header)
        return headers

    @staticmethod
    def _int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
        limit = (1 << prefix_bits) - 1
        value = block[pos] & limit
        pos += 1
        if value < limit:
            return value, pos
        shift = 0
        while True:
            if pos >= len(block):
                raise HpackError("integer runs past the end of the block")
            byte = block[pos]
            pos += 1
            value += (byte & 127) << shift
            shift += 7
            if not byte & 128:
                return value, pos
            if shift > 28:
                raise HpackError("integer too large")

    def _string(self, block: bytes, pos: int) -> tuple[bytes, int]:
        if pos >= len(block):
            raise HpackError("string runs past the end of the block")
        coded = block[pos] & 0x80
        length, pos = self._int(block, pos, 7)
        stop = pos + length
        if stop > len(block):
            raise HpackError("string runs past the end of the block")
        raw = block[pos:stop]
        if coded:
            decoded = _HUFFMAN_CACHE.get(raw)
            if decoded is None:
                try:
                    decoded = huffman.decode(raw)
                except huffman.HuffmanError as exc:
                    raise HpackError(str(exc)) from None
                if len(raw) <= _CACHED_LENGTH:
                    if len(_HUFFMAN_CACHE) >= _CACHE_ENTRIES:
                        _HUFFMAN_CACHE.clear()
                    _HUFFMAN_CACHE[raw] = decoded
            return decoded, stop
        return raw, stop

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[Header, int]:
        index, pos = self._int(block, pos, prefix_bits)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = self._string(block, pos)
        value, pos = self._string(block, pos)
        return (name, value), pos

    def _entry(self, index: int) -> Header:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        dynamic = index - len(STATIC) - 1
        if index == 0 or dynamic >= len(self._table):
            raise HpackError(f"header index {index} is not in the table")
        return self._table[dynamic]

    def _add(self, header: Header) -> None:
        size = len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
        if size > self._table_limit:
            # An entry larger than the table empties it and is not added (4.4).
            self._table.clear()
            self._table_size = 0
            return
        self._evict(size)
        self._table.appendleft(header)
        self._table_size += size

    def _evict(self, room: int) -> None:
        while self._table and self._table_size + room > self._table_limit:
            name, value = self._table.pop()
            self._table_size -= len(name) + len(value) + ENTRY_OVERHEAD
