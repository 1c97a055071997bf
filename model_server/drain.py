"""Shutdown within the grace period: readiness off, listeners closed, in-flight requests
finished, then the server's threads stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from .core.inference import InferenceService
from .grpcwire.server import GrpcServer
from .http.server import HttpServer

log = logging.getLogger("modelship_server")

STOP_MARGIN = 1.0  # seconds past the grace period the threads may take to stop


async def drain(
    service: InferenceService,
    http: HttpServer,
    grpc_server: GrpcServer | None,
    grace: float,
    stop_threads: Callable[[], None],
) -> bool:
    """Everything happens within grace seconds (and STOP_MARGIN for the threads).

    stop_threads joins the server's threads (blocking; it runs off the event loop). False when
    they were still stopping then, and the process must exit without them.
    """
    log.info("shutting down: draining %d in-flight request(s)", service.inflight)
    loop = asyncio.get_running_loop()
    service.models.start_draining()
    http.stop_accepting()
    if grpc_server:
        grpc_server.stop_accepting()
    deadline = loop.time() + grace
    while service.inflight and loop.time() < deadline:
        await asyncio.sleep(0.02)
    await http.close(deadline)
    if grpc_server:
        await grpc_server.close(deadline)
    stopped = await _within(stop_threads, deadline + STOP_MARGIN - loop.time())
    if stopped:
        log.info("stopped")
    else:
        log.warning("grace period over: exiting while batch or loading threads still run")
    return stopped


async def _within(blocking: Callable[[], None], seconds: float) -> bool:
    """Run blocking on a daemon thread; False if it has not returned within seconds.

    Not the loop's executor: closing the loop would wait for that thread.
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            blocking()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(finish)

    threading.Thread(target=run, name="shutdown", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), max(0.0, seconds))
    except TimeoutError:
        return False
    return True
