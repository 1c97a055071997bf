"""The one parser for model versions named in a URL or a request field."""

from __future__ import annotations

from .errors import invalid

# Versions are int64 in TF Serving's protos; more digits than this cannot fit one.
_MAX_DIGITS = 19
_MAX_VERSION = (1 << 63) - 1
_ASCII_DIGITS = frozenset("0123456789")


def parse_version(text: str | None) -> int | None:
    """A version number, or None when none is given; INVALID_ARGUMENT if it is not one.

    Only ASCII digits count: str.isdigit accepts Arabic-Indic or superscript digits, which
    int() refuses or reads differently, and thousands of digits take quadratic time to convert.
    """
    if text is None or text == "":
        return None
    if len(text) > _MAX_DIGITS or not set(text) <= _ASCII_DIGITS:
        raise invalid(
            f"version must be a number of at most {_MAX_DIGITS} digits, got {_quote(text)}"
        )
    value = int(text)
    if value > _MAX_VERSION:
        raise invalid(f"version {text} is larger than the largest int64")
    return value


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
