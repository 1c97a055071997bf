"""An open-loop HTTP load generator for the local cluster: requests at a set rate, each on a new
connection through the service proxy (so every request is balanced afresh over the ready pods,
as clients behind a kube-proxy see it). The rate can change while it runs; every answer is
checked, and every failure is counted with its cause.

    gen = LoadGenerator(proxy_url, predict_url, body, expect=b'"predictions"')
    gen.start(rate=60)      # requests per second, in a background thread
    gen.set_rate(5)
    result = gen.stop()     # sent, succeeded, failures by cause, latencies
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    sent: int = 0
    succeeded: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    # (seconds since start, cause) of the first failures, for a readable assertion message.
    first_failures: list[tuple[float, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def _head(method: str, url: str, length: int) -> bytes:
    host = urlsplit(url).netloc
    return (
        f"{method} {url} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


class LoadGenerator:
    def __init__(
        self,
        proxy_url: str,
        url: str,
        body: bytes,
        *,
        expect: bytes | None = None,
        timeout: float = 10.0,
    ) -> None:
        proxy = urlsplit(proxy_url)
        self._proxy = (proxy.hostname or "127.0.0.1", proxy.port or 80)
        self._request = _head("POST", url, len(body)) + body
        self._expect = expect
        self._timeout = timeout
        self._rate = 0.0
        self._result = LoadResult()
        self._began = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    # ---- control, from any thread -------------------------------------------------------------

    def start(self, rate: float) -> None:
        self._rate = rate
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()

    def set_rate(self, rate: float) -> None:
        self._rate = rate

    def stop(self) -> LoadResult:
        """Stop sending, wait for the requests in flight, return the totals."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 30)
        return self._result

    # ---- the loop -------------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        ready.set()
        self._loop.run_until_complete(self._drive(self._stopping))
        self._loop.close()

    async def _drive(self, stopping: asyncio.Event) -> None:
        self._began = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        next_at = time.monotonic()
        while not stopping.is_set():
            rate = self._rate
            if rate <= 0:
                await asyncio.sleep(0.05)
                next_at = time.monotonic()
                continue
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(min(next_at - now, 0.05))
                continue
            task = asyncio.create_task(self._one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            # Open loop: the schedule never waits for answers, so a slow server sees more load.
            next_at += 1.0 / rate
            if next_at < now - 1.0:
                next_at = now  # after a stall, do not fire a catch-up burst
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self) -> None:
        result = self._result
        result.sent += 1
        began = time.monotonic()
        try:
            answer = await asyncio.wait_for(self._exchange(), self._timeout)
        except TimeoutError:
            self._fail(began, "timeout")
            return
        except OSError as err:
            self._fail(began, f"{type(err).__name__}: {err}")
            return
        status_line, _, rest = answer.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or parts[1] != b"200":
            detail = rest.rpartition(b"\r\n\r\n")[2][:200].decode(errors="replace")
            self._fail(began, f"{status_line.decode(errors='replace')}: {detail}")
            return
        if self._expect is not None and self._expect not in answer:
            self._fail(began, f"unexpected body: {answer[-200:]!r}")
            return
        result.succeeded += 1
        result.latencies.append(time.monotonic() - began)

    async def _exchange(self) -> bytes:
        reader, writer = await asyncio.open_connection(*self._proxy)
        try:
            writer.write(self._request)
            await writer.drain()
            return await reader.read(-1)  # Connection: close, so the answer ends at EOF
        finally:
            writer.close()

    def _fail(self, began: float, cause: str) -> None:
        self._result.failures[cause.split(":", maxsplit=1)[0]] += 1
        if len(self._result.first_failures) < 10:
            self._result.first_failures.append((began - self._began, cause))
