"""HPACK's Huffman code (RFC 7541, Appendix B), decoded four bits at a time.

The code is canonical: symbols sorted by (code length, symbol) take consecutive codes, so the
257 code lengths below define it completely.
"""

from __future__ import annotations

# Code length in bits of each symbol: bytes 0-255, then 256, EOS.
LENGTHS = (
    13,
    23,
    28,
    28,
    28,
    28,
    28,
    28,
    28,
    24,
    30,
    28,
    28,
    30,
    28,
    28,
    28,
    28,
    28,
    28,
    28,
    28,
    30,
    28,
    28,
    28,
    28,
    28,
    28,
    28,
    28,
    28,
    6,
    10,
    10,
    12,
    13,
    6,
    8,
    11,
    10,
    10,
    8,
    11,
    8,
    6,
    6,
    6,
    5,
    5,
    5,
    6,
    6,
    6,
    6,
    6,
    6,
    6,
    7,
    8,
    15,
    6,
    12,
    10,
    13,
    6,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    8,
    7,
    8,
    13,
    19,
    13,
    14,
    6,
    15,
    5,
    6,
    5,
    6,
    5,
    6,
    6,
    6,
    5,
    7,
    7,
    6,
    6,
    6,
    5,
    6,
    7,
    6,
    5,
    5,
    6,
    7,
    7,
    7,
    7,
    7,
    15,
    11,
    14,
    13,
    28,
    20,
    22,
    20,
    20,
    22,
    22,
    22,
    23,
    22,
    23,
    23,
    23,
    23,
    23,
    24,
    23,
    24,
    24,
    22,
    23,
    24,
    23,
    23,
    23,
    23,
    21,
    22,
    23,
    22,
    23,
    23,
    24,
    22,
    21,
    20,
    22,
    22,
    23,
    23,
    21,
    23,
    22,
    22,
    24,
    21,
    22,
    23,
    23,
    21,
    21,
    22,
    21,
    23,
    22,
    23,
    23,
    20,
    22,
    22,
    22,
    23,
    22,
    22,
    23,
    26,
    26,
    20,
    19,
    22,
    23,
    22,
    25,
    26,
    26,
    26,
    27,
    27,
    26,
    24,
    25,
    19,
    21,
    26,
    27,
    27,
    26,
    27,
    24,
    21,
    21,
    26,
    26,
    28,
    27,
    27,
    27,
    20,
    24,
    20,
    21,
    22,
    21,
    21,
    23,
    22,
    22,
    25,
    25,
    24,
    24,
    26,
    23,
    26,
    27,
    26,
    26,
    27,
    27,
    27,
    27,
    27,
    28,
    27,
    27,
    27,
    27,
    27,
    26,
    30,
)
EOS = 256


class HuffmanError(ValueError):
    """A string that is not a valid HPACK Huffman encoding (RFC 7541, 5.2)."""


def codes() -> list[int]:
    """Each symbol's code, assigned canonically from LENGTHS."""
    out = [0] * len(LENGTHS)
    code, previous = 0, 0
    for index, symbol in enumerate(sorted(range(len(LENGTHS)), key=lambda s: (LENGTHS[s], s))):
        if index:
            code = (code + 1) << (LENGTHS[symbol] - previous)
        previous = LENGTHS[symbol]
        out[symbol] = code
    return out


def _tables() -> tuple[list[tuple[int, bytes, bool]], list[bool]]:
    """A state machine over the code tree: (state, nibble) -> (next state, bytes out, failed).

    States are the tree's inner nodes (0 is the root). A state may end a string when the bits
    since the last symbol are all ones and fewer than eight: the EOS prefix as padding.
    """
    children: list[list[int]] = [[-1, -1]]  # inner node -> child per bit; ~symbol for a leaf
    for symbol, code in enumerate(codes()):
        node = 0
        for shift in range(LENGTHS[symbol] - 1, -1, -1):
            bit = (code >> shift) & 1
            if shift == 0:
                children[node][bit] = ~symbol
            else:
                if children[node][bit] == -1:
                    children[node][bit] = len(children)
                    children.append([-1, -1])
                node = children[node][bit]
    accepting = [False] * len(children)
    node, depth = 0, 0
    while node >= 0 and depth < 8:  # the all-ones path from the root
        accepting[node] = True
        node, depth = children[node][1], depth + 1
    table: list[tuple[int, bytes, bool]] = []
    for state in range(len(children)):
        for nibble in range(16):
            node, out, failed = state, bytearray(), False
            for shift in (3, 2, 1, 0):
                child = children[node][(nibble >> shift) & 1]
                if child < 0:
                    if ~child == EOS:  # EOS inside a string is an error (5.2)
                        failed = True
                        break
                    out.append(~child)
                    node = 0
                else:
                    node = child
            table.append((node, bytes(out), failed))
    return table, accepting


_TABLE, _ACCEPTING = _tables()


def decode(data: bytes) -> bytes:
    table = _TABLE
    state = 0
    out = bytearray()
    for byte in data:
        state, emitted, failed = table[state * 16 + (byte >> 4)]
        if failed:
            raise HuffmanError("EOS symbol inside a Huffman-coded string")
        out += emitted
        state, emitted, failed = table[state * 16 + (byte & 15)]
        if failed:
            raise HuffmanError("EOS symbol inside a Huffman-coded string")
        out += emitted
    if not _ACCEPTING[state]:
        raise HuffmanError("Huffman-coded string ends in invalid padding")
    return bytes(out)


def encode(data: bytes) -> bytes:
    """The Huffman coding of data (padded with ones), for tests and for callers that want it."""
    table = codes()
    bits, count = 0, 0
    for byte in data:
        bits = (bits << LENGTHS[byte]) | table[byte]
        count += LENGTHS[byte]
    pad = -count % 8
    bits = (bits << pad) | ((1 << pad) - 1)
    return (bits).to_bytes((count + pad) // 8, "big")
