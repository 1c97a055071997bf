"""Big JSON bodies are parsed on a worker thread; small ones inline, on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import orjson
import pytest
from modelship_server.protocols import _jsonarrays, json_body

pytestmark = pytest.mark.unit


def _body(numbers: int) -> bytes:
    return orjson.dumps(
        {"x": np.arange(numbers, dtype=np.float64) / 7}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def _parsed_on(body: bytes, monkeypatch: pytest.MonkeyPatch, loads: bool = False) -> str:
    """The name of the thread that parsed `body`, called from an event loop."""
    threads: list[str] = []
    parse, orjson_loads = json_body.parse, json_body.orjson.loads

    def spy_parse(*args: object) -> json_body.Parsed:
        threads.append(threading.current_thread().name)
        return parse(*args)  # type: ignore[arg-type]

    def spy_loads(data: bytes) -> object:
        threads.append(threading.current_thread().name)
        return orjson_loads(data)

    monkeypatch.setattr(json_body, "parse", spy_parse)
    monkeypatch.setattr(json_body.orjson, "loads", spy_loads)

    async def main() -> str:
        if loads:
            await json_body.loads_off_loop(body)
        else:
            parsed = await json_body.parse_off_loop(body)
            assert parsed.value["x"].shape[0] > 0
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    return "loop" if threads[0] == loop_thread else "worker"


def test_the_threshold() -> None:
    assert not json_body.off_loop(b" " * (json_body.OFF_LOOP_BYTES - 1))
    assert json_body.off_loop(b" " * json_body.OFF_LOOP_BYTES)


def test_small_bodies_are_parsed_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    body = _body(1000)
    assert len(body) < json_body.OFF_LOOP_BYTES
    assert _parsed_on(body, monkeypatch) == "loop"
    assert _parsed_on(body, monkeypatch, loads=True) == "loop"


def test_big_bodies_are_parsed_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    body = _body(200_000)
    assert len(body) >= json_body.OFF_LOOP_BYTES
    assert _parsed_on(body, monkeypatch) == "worker"
    assert _parsed_on(body, monkeypatch, loads=True) == "worker"


def test_the_scanner_lets_other_threads_run_while_it_reads_numbers() -> None:
    """With release, the event loop's thread gets the GIL while the numbers are read."""
    if _jsonarrays is None:
        pytest.skip("the C extension is not built")
    body = _body(3_000_000)
    done = threading.Event()
    started = threading.Event()

    def scan() -> None:
        started.set()
        _jsonarrays.extract(body, json_body.MIN_NUMBERS, None, True)
        done.set()

    worker = threading.Thread(target=scan)
    worker.start()
    started.wait()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0)  # a GIL hand-over each time round
    worker.join()
    # Holding the GIL, the scan would allow this loop a tick or two at most (the switch
    # interval is 5 ms and the scan takes a few hundred).
    assert ticks > 10
