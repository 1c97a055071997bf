"""Request bodies parsed as JSON, with the big numeric arrays going straight to numpy.

`parse` gives what `orjson.loads` gives, except that numeric arrays of at least
`MIN_NUMBERS` numbers that are object member values come back as int64 / float64 numpy
arrays instead of lists: the C extension `_jsonarrays` parses them without creating a Python
object per number. Without the extension (no C compiler at install time) everything is
orjson's, which is slower but the same to every caller.

A body of at least `OFF_LOOP_BYTES` is parsed on a worker thread (`parse_off_loop`), with the
C scanner not holding the GIL while it reads numbers, so that one client's 60 MB body does not
stall every other connection. Smaller bodies are parsed inline: a thread hand-over would cost
a small request more than its parse. (orjson itself holds the GIL, so without the extension, or
for a big body that is not numbers, the thread only moves the wait.)
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import orjson

try:
    from . import _jsonarrays  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the extension is optional at install time
    _jsonarrays = None

# Smaller arrays are cheap for orjson and not worth a numpy array each.
MIN_NUMBERS = 32
# Bodies this big or bigger are parsed on a worker thread, off the event loop.
OFF_LOOP_BYTES = 1 << 20
_PLACEHOLDER = "\x00"
_FLOAT32 = np.dtype(np.float32)


def accelerated() -> bool:
    """Whether the C extension is there (it is optional when installing)."""
    return _jsonarrays is not None


@dataclasses.dataclass(frozen=True)
class Parsed:
    value: Any
    # A JSON null may be among the values left as Python lists: numeric conversions of those
    # must check for NaN (a null, to be refused). The numpy arrays never hold one.
    nulls: bool


def off_loop(body: bytes) -> bool:
    """Whether `parse_off_loop` hands this body to a worker thread."""
    return len(body) >= OFF_LOOP_BYTES


async def parse_off_loop(body: bytes, keys: tuple[bytes, ...] | None = None) -> Parsed:
    """`parse`, on a worker thread for a big body (see the module's docstring), else inline."""
    if not off_loop(body):
        return parse(body, keys)
    return await asyncio.to_thread(parse, body, keys, True)


async def loads_off_loop(body: bytes) -> Parsed:
    """orjson.loads (no numpy arrays), on a worker thread for a big body."""
    if not off_loop(body):
        return Parsed(orjson.loads(body), True)
    return Parsed(await asyncio.to_thread(orjson.loads, body), True)


def parse(body: bytes, keys: tuple[bytes, ...] | None = None, release: bool = False) -> Parsed:
    """Parse a JSON body; numeric arrays under member names in `keys` (None: any) as numpy.

    release: the C scanner reads numbers without the GIL (for a call on a worker thread).
    Raises orjson.JSONDecodeError with the position in `body` for invalid JSON.
    """
    if _jsonarrays is not None:
        extracted = _jsonarrays.extract(body, MIN_NUMBERS, keys, release)
        if extracted is not None:
            skeleton, parts = extracted
            try:
                value = orjson.loads(skeleton)
            except orjson.JSONDecodeError:
                pass  # parse the original below, so the error names its real offset
            else:
                arrays = [
                    np.frombuffer(buffer, dtype=np.int64 if is_int else np.float64).reshape(shape)
                    for is_int, shape, buffer in parts
                ]
                return Parsed(_restore(value, arrays), b"null" in skeleton)
    return Parsed(orjson.loads(body), b"null" in body)


def as_dtype(array: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """A parsed array in the input's dtype; float32 without releasing the GIL (see the C)."""
    if (
        _jsonarrays is not None
        and dtype == _FLOAT32
        and array.dtype in (np.float64, np.int64)
        and array.flags.c_contiguous
    ):
        narrowed = _jsonarrays.to_float32(array)
        return np.frombuffer(narrowed, dtype=np.float32).reshape(array.shape)
    return array.astype(dtype)


def _restore(parsed: Any, arrays: list[np.ndarray]) -> Any:
    """Put the arrays back where their placeholders are (only ever object member values).

    A loop, not recursion: orjson accepts deeper nesting than Python's recursion limit.
    """
    stack = [parsed]
    while stack:
        value = stack.pop()
        # Exact type checks: orjson makes only dict, list and str (and isinstance with a union
        # costs several times as much, on every value of every request).
        if type(value) is dict:
            for key, item in value.items():
                kind = type(item)
                if kind is str:
                    if item.startswith(_PLACEHOLDER):
                        value[key] = arrays[int(item[1:])]
                elif kind is dict or kind is list:
                    stack.append(item)
        else:
            stack.extend(item for item in value if type(item) is dict or type(item) is list)
    return parsed
