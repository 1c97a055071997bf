"""Does a live object already hold everything we would apply? Then applying is a wasted write."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    # The apiserver rewrites quantities to canonical form ("0.5" → "500m", 1 → "1").
    if isinstance(want, str | int | float) and isinstance(have, str | int | float):
        try:
            return bool(
                Decimal(parse_quantity(want))  # type: ignore[no-untyped-call]
                == Decimal(parse_quantity(have))  # type: ignore[no-untyped-call]
            )
        except (ValueError, InvalidOperation, TypeError):
            return False
    return False


def contains(live: Any, desired: Any) -> bool:
    """True when every field of `desired` is in `live` with the same value. Extra live fields
    (defaults, status, other managers' fields) do not count as a difference."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(have, want) for have, want in zip(live, desired, strict=True))
        )
    return _same_scalar(desired, live)
