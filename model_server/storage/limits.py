"""How much a fetch may write and how long it may take, and the meter that enforces it while bytes
arrive. A hostile or broken source (an archive bomb, an endless or trickling stream) fails with a
message naming the limit and how to raise it, instead of filling the node's disk or hanging."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from .errors import FetchError, SourceError

_SIZE = re.compile(r"^\s*(\d+)\s*(|k|Ki|M|Mi|G|Gi|T|Ti)\s*$")
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
}


@dataclass(frozen=True)
class Limits:
    """max_bytes: the most one fetch writes, downloaded or unpacked. max_files: the most files it
    writes (downloaded objects, or an archive's members). max_ratio: the most an archive may
    expand (unpacked size / archive size). deadline: seconds for the whole fetch. min_rate: bytes
    per second that must arrive in every rate_window seconds."""

    max_bytes: int = 20 << 30
    max_files: int = 100_000
    max_ratio: float = 200.0
    deadline: float = 3600.0
    min_rate: int = 10 << 10
    rate_window: float = 60.0


def parse_size(text: str) -> int:
    """Bytes from "1048576", "500Mi", "20Gi" or "3G" (Kubernetes quantity suffixes)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (a whole number, optionally with Ki, Mi, Gi…)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{text!r} must be a positive number")
    return value


def parse_count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} must be a whole number above 0")
    return int(text)


def parse_rate(text: str) -> int:
    """Bytes per second, with the size suffixes; 0 turns the minimum rate off."""
    return parse_size(text)


# Setting name -> (flag, environment variable, parser, what the value is).
SETTINGS: dict[str, tuple[str, str, Callable[[str], float], str]] = {
    "max_bytes": ("--max-bytes", "MODELSHIP_FETCH_MAX_BYTES", parse_size, "size"),
    "max_files": ("--max-files", "MODELSHIP_FETCH_MAX_FILES", parse_count, "count"),
    "max_ratio": ("--max-ratio", "MODELSHIP_FETCH_MAX_RATIO", parse_positive, "ratio"),
    "deadline": ("--deadline", "MODELSHIP_FETCH_DEADLINE", parse_positive, "seconds"),
    "min_rate": ("--min-rate", "MODELSHIP_FETCH_MIN_RATE", parse_rate, "bytes per second"),
    "rate_window": ("--rate-window", "MODELSHIP_FETCH_RATE_WINDOW", parse_positive, "seconds"),
}


def limits_from(flags: Mapping[str, str | None], env: Mapping[str, str]) -> Limits:
    """Flags (by setting name) win over environment variables, which win over the defaults."""
    values: dict[str, float] = {}
    for field in fields(Limits):
        flag, variable, parse, _ = SETTINGS[field.name]
        raw, source = flags.get(field.name), flag
        if raw is None:
            raw, source = env.get(variable), variable
        if raw is None or raw == "":
            continue
        try:
            values[field.name] = parse(raw)
        except ValueError as e:
            raise FetchError(f"invalid {source}: {e}") from e
    return Limits(**values)  # type: ignore[arg-type]


def deadline_passed(limits: Limits) -> str:
    return (
        f"the fetch took longer than {limits.deadline:g} s (--deadline, MODELSHIP_FETCH_DEADLINE)"
    )


class Meter:
    """Counts the bytes a fetch writes and checks the deadline and the minimum rate; backends call
    `add` after every chunk, so a slow or endless source is stopped between chunks."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.total = 0
        self.files = 0
        self._clock = clock
        self._started = clock()
        self._window_start = self._started
        self._window_bytes = 0

    def add(self, count: int) -> None:
        self.total += count
        self._window_bytes += count
        if self.total > self.limits.max_bytes:
            raise SourceError(
                f"the download exceeds {self.limits.max_bytes} bytes (--max-bytes, "
                "MODELSHIP_FETCH_MAX_BYTES)"
            )
        self.check_time()

    def add_file(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise SourceError(
                f"the source holds more than {self.limits.max_files} files (--max-files, "
                "MODELSHIP_FETCH_MAX_FILES)"
            )
        self.check_time()

    def check_time(self) -> None:
        now = self._clock()
        if now - self._started > self.limits.deadline:
            raise SourceError(deadline_passed(self.limits))
        elapsed = now - self._window_start
        if elapsed >= self.limits.rate_window:
            rate = self._window_bytes / elapsed
            if rate < self.limits.min_rate:
                raise SourceError(
                    f"the source is too slow: {rate:.0f} bytes/s over the last {elapsed:.0f} s, "
                    f"below the minimum of {self.limits.min_rate} (--min-rate, "
                    "MODELSHIP_FETCH_MIN_RATE)"
                )
            self._window_start, self._window_bytes = now, 0

    def remaining(self) -> float:
        """Seconds left before the deadline, for socket timeouts."""
        return max(0.0, self.limits.deadline - (self._clock() - self._started))
