"""Fetch limits: parsing flags and environment, and the meter that stops big or slow sources."""

from __future__ import annotations

import pytest
from modelship_server.storage.errors import FetchError, SourceError
from modelship_server.storage.limits import Limits, Meter, limits_from, parse_size

NO_FLAGS: dict[str, str | None] = {}


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("1048576", 1 << 20), ("500Mi", 500 << 20), ("2Gi", 2 << 30), ("3G", 3 * 10**9)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5Gi", "10 GB", "lots"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_defaults_without_flags_or_environment() -> None:
    assert limits_from(NO_FLAGS, {}) == Limits()


def test_environment_sets_and_flags_win() -> None:
    env = {"MODELSHIP_FETCH_MAX_BYTES": "1Gi", "MODELSHIP_FETCH_DEADLINE": "30"}
    limits = limits_from({"deadline": "5", "max_ratio": "10"}, env)
    assert (limits.max_bytes, limits.deadline, limits.max_ratio) == (1 << 30, 5.0, 10.0)
    assert limits.min_rate == Limits().min_rate


@pytest.mark.parametrize(
    ("flags", "env", "says"),
    [
        ({"max_ratio": "0"}, {}, "invalid --max-ratio: '0' must be a positive number"),
        ({}, {"MODELSHIP_FETCH_DEADLINE": "soon"}, "invalid MODELSHIP_FETCH_DEADLINE: 'soon'"),
        ({"max_bytes": "1TB"}, {}, "invalid --max-bytes: '1TB' is not a size"),
        ({"rate_window": "inf"}, {}, "invalid --rate-window"),
    ],
)
def test_bad_settings_name_their_source(
    flags: dict[str, str | None], env: dict[str, str], says: str
) -> None:
    with pytest.raises(FetchError, match=says):
        limits_from(flags, env)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_counts_up_to_the_size_limit() -> None:
    meter = Meter(Limits(max_bytes=10), Clock())
    meter.add(10)
    with pytest.raises(SourceError, match=r"exceeds 10 bytes \(--max-bytes"):
        meter.add(1)


def test_the_deadline_stops_a_fetch() -> None:
    clock = Clock()
    meter = Meter(Limits(deadline=5, min_rate=0), clock)
    clock.now += 4
    meter.add(1)
    assert meter.remaining() == 1
    clock.now += 2
    with pytest.raises(SourceError, match=r"longer than 5 s \(--deadline"):
        meter.add(1)


def test_a_trickle_below_the_minimum_rate_fails_after_one_window() -> None:
    clock = Clock()
    meter = Meter(Limits(min_rate=100, rate_window=10), clock)
    for _ in range(9):
        clock.now += 1
        meter.add(50)  # 50 bytes/s: not yet judged, the window is not over
    clock.now += 1
    with pytest.raises(SourceError, match=r"too slow: 50 bytes/s over the last 10 s"):
        meter.add(50)


def test_each_window_is_judged_on_its_own() -> None:
    clock = Clock()
    meter = Meter(Limits(min_rate=100, rate_window=10), clock)
    clock.now += 10
    meter.add(5000)  # a fast first window does not pay for a slow second one
    clock.now += 10
    with pytest.raises(SourceError, match="too slow"):
        meter.add(10)


def test_a_zero_minimum_rate_is_off() -> None:
    clock = Clock()
    meter = Meter(Limits(min_rate=0, rate_window=1), clock)
    clock.now += 50
    meter.add(0)


def test_the_meter_counts_files_up_to_the_limit() -> None:
    meter = Meter(Limits(max_files=2), Clock())
    meter.add_file()
    meter.add_file()
    with pytest.raises(SourceError, match=r"more than 2 files \(--max-files"):
        meter.add_file()


@pytest.mark.parametrize("text", ["0", "-5", "1e3", "many"])
def test_bad_file_counts_are_refused(text: str) -> None:
    with pytest.raises(FetchError, match=f"invalid MODELSHIP_FETCH_MAX_FILES: '{text}' must be"):
        limits_from(NO_FLAGS, {"MODELSHIP_FETCH_MAX_FILES": text})
