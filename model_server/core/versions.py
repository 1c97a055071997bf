"""The one parser for model versions: in a URL, a request field, or a version folder's name."""

from __future__ import annotations

from .errors import invalid

# Versions are int64 in TF Serving's protos.
MAX_VERSION = (1 << 63) - 1
# Leading zeros are fine ("00000123" is version 123); thousands of digits are not, since
# converting them costs quadratic time.
_MAX_CHARS = 64
_ASCII_DIGITS = frozenset("0123456789")


def plain_version(text: str) -> int | None:
    """The version `text` spells, or None if it spells none.

    Only ASCII digits count: str.isdigit also accepts Arabic-Indic or superscript digits, which
    int() reads as other numbers or refuses with an exception.
    """
    if not text or len(text) > _MAX_CHARS or not set(text) <= _ASCII_DIGITS:
        return None
    value = int(text)
    return value if value <= MAX_VERSION else None


def parse_version(text: str | None) -> int | None:
    """A requested version, or None when none is given; INVALID_ARGUMENT if it is not one."""
    if text is None or text == "":
        return None
    value = plain_version(text)
    if value is None:
        raise invalid(f"version must be a whole number from 0 to {MAX_VERSION}, got {_quote(text)}")
    return value


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
