"""The largest tensor one request may materialise, checked from its declared shape.

A request declares a shape before it carries (or instead of carrying) the values: a 45-byte
TensorProto with one float and dims [1 << 20, 1 << 20] asks for a fill of 4 TiB. Every decoder
checks the declared shape here before allocating anything, with Python integers so a product
of huge dims cannot wrap around.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .errors import invalid

DEFAULT_MAX_ELEMENTS = 1 << 26
DEFAULT_MAX_BYTES = 256 << 20
# Allocations above this run on a worker thread, so one big request does not stall the loop.
OFF_LOOP_BYTES = 1 << 20
# Bytes counted per element of a string tensor: its slot in an object array.
OBJECT_ITEMSIZE = 8


@dataclasses.dataclass(frozen=True)
class TensorLimits:
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_elements < 1 or self.max_bytes < 1:
            raise ValueError("tensor limits must be positive")


# The process-wide limits, in a one-slot list rather than a rebound global.
_current = [TensorLimits()]


def configure(limits: TensorLimits) -> None:
    """Set the process-wide limits (the command line does, once, before serving)."""
    _current[0] = limits


def current() -> TensorLimits:
    return _current[0]


def check_shape(key: str, dims: Sequence[int], itemsize: int) -> tuple[int, ...]:
    """The declared dims as a tuple; INVALID_ARGUMENT if negative or over the limits."""
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise invalid(f"input {key!r}: negative dimension in shape {list(shape)}")
    elements = 1
    for d in shape:
        elements *= d
    limits = _current[0]
    if elements > limits.max_elements:
        raise invalid(
            f"input {key!r}: shape {_short(shape)} has {_count(elements)} elements, over the "
            f"limit of {limits.max_elements} (--max_tensor_elements)"
        )
    size = elements * max(itemsize, 1)
    if size > limits.max_bytes:
        raise invalid(
            f"input {key!r}: shape {_short(shape)} needs {size} bytes, over the limit of "
            f"{limits.max_bytes} (--max_tensor_bytes)"
        )
    return shape


class RequestBudget:
    """The bytes a request's input tensors take together, against the same byte limit.

    Per-tensor checks alone would let one request declare many tensors just under the limit.
    """

    __slots__ = ("limit", "used")

    def __init__(self) -> None:
        self.limit = _current[0].max_bytes
        self.used = 0

    def add(self, key: str, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise invalid(
                f"input {key!r}: the request's tensors need {self.used} bytes together, over the "
                f"limit of {self.limit} (--max_tensor_bytes)"
            )


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for d in shape:
        count *= int(d)
    return count


def _count(elements: int) -> str:
    text = str(elements)
    return text if len(text) <= 30 else f"~1e{len(text) - 1}"


def _short(shape: tuple[int, ...]) -> str:
    text = str(list(shape))
    return text if len(text) <= 120 else text[:117] + "...]"
