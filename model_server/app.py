"""Wire the server together and run it until SIGTERM, then drain and exit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import uvloop

from .cli import Settings
from .config_files import ConfigError, load_model_config
from .core.inference import InferenceService
from .core.manager import ModelManager
from .core.metrics import ServerMetrics
from .core.metrics_share import MetricsShare
from .http.server import HttpServer, Limits, Request, Response, json_error
from .protocols import tfserving_grpc, v2_grpc
from .protocols.tfserving_rest import TfServingRest
from .protocols.v2_rest import V2Rest
from .runtime import savedmodel
from .workers import WorkerInfo

log = logging.getLogger("modelship_server")


class Router:
    """Sends each REST request to the adapter owning its path prefix."""

    def __init__(
        self, service: InferenceService, metrics_path: str | None, max_b64_bytes: int | None = None
    ) -> None:
        self.service = service
        self.metrics_paths = {"/metrics"} | ({metrics_path} if metrics_path else set())
        self.tfserving = TfServingRest(service, max_b64_bytes)
        self.v2 = V2Rest(service)
        self.render_metrics: Callable[[], bytes] = service.metrics.registry.render

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/v1/"):
            return await self.tfserving.handle(request)
        if path == "/v2" or path.startswith("/v2/"):
            return await self.v2.handle(request)
        if path in self.metrics_paths and request.method == "GET":
            body = self.render_metrics()
            return Response(200, body, "text/plain; version=0.0.4; charset=utf-8")
        return json_error(404, f"no such endpoint: {request.method} {path}")


class ConfigWatcher:
    """Re-reads --model_config_file every poll interval and applies it when it changed."""

    def __init__(self, path: str, seconds: float, manager: ModelManager) -> None:
        self._path = path
        self._seconds = seconds
        self._manager = manager
        self._last = Path(path).read_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="config-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                data = Path(self._path).read_bytes()
                if data == self._last:
                    continue
                models = load_model_config(self._path)
            except (OSError, ConfigError) as exc:
                log.error("model config not reloaded: %s", exc)
                continue
            self._last = data
            log.info("model config changed: %s", [m.name for m in models])
            self._manager.set_config(models)


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        loader = functools.partial(
            savedmodel.load,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
        )
        self.manager = ModelManager(loader, settings.file_system_poll_seconds)
        self.service = InferenceService(self.manager, self.metrics, settings.batching)
        self.manager._on_unload = self.service.on_unload
        self.router = Router(self.service, settings.metrics_path, settings.max_b64_bytes)
        # One of several processes sharing the ports (--workers): see workers.py.
        self.worker = WorkerInfo.from_env()
        self.share: MetricsShare | None = None
        if self.worker:
            self.share = MetricsShare(self.metrics.registry, self.worker.folder, self.worker.index)
            self.router.render_metrics = self.share.render
        limits = Limits(
            max_body_bytes=settings.max_body_bytes, request_timeout=settings.rest_timeout_seconds
        )
        self.http = HttpServer(self.router, limits)
        self.grpc: grpc.aio.Server | None = None
        self.watcher: ConfigWatcher | None = None
        self.rest_port = 0
        self.grpc_port = 0
        self._stop = asyncio.Event()

    async def start(self) -> None:
        s = self.settings
        self.service.start()
        if self.worker:
            # A worker listens once its models are loaded (or have failed): the kernel hands
            # connections to any listening worker, and one still loading would answer 503s.
            await asyncio.to_thread(self.manager.apply_config, s.models)
            if self.share:
                self.share.start()
        else:
            self.manager.set_config(s.models)
        self.manager.start()
        if s.model_config_file and s.model_config_poll_seconds > 0:
            self.watcher = ConfigWatcher(
                s.model_config_file, s.model_config_poll_seconds, self.manager
            )
            self.watcher.start()
        if s.rest_port:
            self.rest_port = await self.http.start(
                s.host, s.rest_port, reuse_port=bool(self.worker)
            )
            log.info("REST listening on %s:%d", s.host, self.rest_port)
        if s.grpc_port:
            self.grpc = grpc.aio.server(
                options=[
                    ("grpc.max_receive_message_length", s.max_body_bytes),
                    ("grpc.max_send_message_length", -1),
                    ("grpc.so_reuseport", 1 if self.worker else 0),
                ]
            )
            tfserving_grpc.add_to_server(
                self.grpc, self.service, reload_allowed=self.worker is None
            )
            v2_grpc.add_to_server(self.grpc, self.service)
            address = f"{s.host}:{s.grpc_port}"
            self.grpc_port = self.grpc.add_insecure_port(address)
            if not self.grpc_port:
                raise OSError(f"cannot bind gRPC to {address}")
            await self.grpc.start()
            log.info("gRPC listening on %s:%d", s.host, self.grpc_port)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def shutdown(self) -> bool:
        """Readiness goes false, listeners close, in-flight requests finish, then all stops.

        Everything happens within --shutdown_grace_seconds (and STOP_MARGIN for the threads):
        False when threads were still stopping then, and the process must exit without them.
        """
        log.info("shutting down: draining %d in-flight request(s)", self.service.inflight)
        loop = asyncio.get_running_loop()
        self.service.models.start_draining()
        self.http.stop_accepting()
        grace = self.settings.shutdown_grace_seconds
        deadline = loop.time() + grace
        grpc_stopped = self.grpc.stop(grace) if self.grpc else None
        while self.service.inflight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await self.http.close(deadline)
        if grpc_stopped is not None:
            await grpc_stopped
        stopped = await _within(self._stop_threads, deadline + STOP_MARGIN - loop.time())
        if stopped:
            log.info("stopped")
        else:
            log.warning("grace period over: exiting while batch or loading threads still run")
        return stopped

    def _stop_threads(self) -> None:
        """Join the server's threads (blocking: never on the event loop)."""
        if self.watcher:
            self.watcher.stop()
        self.manager.stop()
        self.service.stop()
        if self.share:
            self.share.stop()


STOP_MARGIN = 1.0  # seconds past the grace period the threads may take to stop


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


async def _main(settings: Settings) -> int:
    server = Server(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_stop)
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        # Join the loading threads: TensorFlow aborts the process if one is torn down mid-load.
        await asyncio.to_thread(server.manager.stop)
        server.service.stop()
        return 1
    await server.wait()
    if not await server.shutdown():
        # Threads still inside TensorFlow would hold up (or crash) the interpreter's exit.
        logging.shutdown()
        os._exit(0)
    return 0


def run(settings: Settings) -> int:
    # Hand the GIL over sooner than the default 5 ms: batch threads waking to run a model, and
    # the event loop waking to answer, otherwise wait out a whole interval under load.
    sys.setswitchinterval(float(os.environ.get("MODELSHIP_SWITCH_INTERVAL", "0.001")))
    # The imports (TensorFlow's mostly) leave ~275k objects that live as long as the process.
    # Every full collection would walk them all, stalling requests ~150 ms every few seconds
    # under load; frozen, collections see only what the server makes afterwards.
    gc.freeze()
    return uvloop.run(_main(settings))
