"""Wire the server together and run it until SIGTERM, then drain and exit."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal

import uvloop

from .cli import Settings
from .config_watcher import ConfigWatcher
from .core.inference import InferenceService
from .core.manager import ModelManager
from .core.metrics import ServerMetrics
from .core.metrics_share import MetricsShare
from .drain import drain
from .grpcwire.calls import Registry
from .grpcwire.server import GrpcServer
from .http.server import HttpServer, Limits
from .process_tuning import tune_for_serving
from .protocols import tfserving_grpc, v2_grpc
from .router import Router
from .runtime import savedmodel
from .tls import TlsReloader
from .workers import WorkerInfo

log = logging.getLogger("modelship_server")


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
        # One of several processes sharing the ports (--workers): see workers.py.
        self.worker = WorkerInfo.from_env()
        self.share: MetricsShare | None = None
        if self.worker:
            self.share = MetricsShare(self.metrics.registry, self.worker.folder, self.worker.index)
        self.router = Router(
            self.service,
            settings.metrics_path,
            settings.max_b64_bytes,
            render_metrics=self.share.render if self.share else None,
        )
        limits = Limits(
            max_body_bytes=settings.max_body_bytes, request_timeout=settings.rest_timeout_seconds
        )
        self.http = HttpServer(self.router, limits)
        self.limits = limits
        self.health: HttpServer | None = None
        if settings.health_port:
            self.health = HttpServer(self.router.health, limits)
        self.tls: TlsReloader | None = None
        if settings.tls is not None:
            self.tls = TlsReloader(settings.tls, settings.tls_poll_seconds)
        self.grpc: GrpcServer | None = None
        self.watcher: ConfigWatcher | None = None
        self.rest_port = 0
        self.grpc_port = 0
        self.health_port = 0
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
            # The watcher only reads and parses; the manager applies what it reports.
            self.watcher = ConfigWatcher(
                s.model_config_file, s.model_config_poll_seconds, self.manager.set_config
            )
            self.watcher.start()
        if self.tls:
            self.tls.start()
        if s.rest_port:
            self.rest_port = await self.http.start(
                s.host,
                s.rest_port,
                reuse_port=bool(self.worker),
                ssl_context=self.tls.ssl_context() if self.tls else None,
            )
            log.info(
                "REST%s listening on %s:%d", " (TLS)" if self.tls else "", s.host, self.rest_port
            )
        if self.health:
            self.health_port = await self.health.start(
                s.host, s.health_port, reuse_port=bool(self.worker)
            )
            log.info("health (plain HTTP) listening on %s:%d", s.host, self.health_port)
        if s.grpc_port:
            registry = Registry()
            tfserving_grpc.add_to_server(registry, self.service, reload_allowed=self.worker is None)
            v2_grpc.add_to_server(registry, self.service)
            self.grpc = GrpcServer(registry, s.max_body_bytes, self.limits.read_timeout)
            self.grpc_port = await self.grpc.start(
                s.host,
                s.grpc_port,
                reuse_port=bool(self.worker),
                ssl_context=self.tls.grpc_ssl_context() if self.tls else None,
            )
            log.info(
                "gRPC%s listening on %s:%d", " (TLS)" if self.tls else "", s.host, self.grpc_port
            )

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def shutdown(self) -> bool:
        """Drain within --shutdown_grace_seconds; False when threads were still stopping then."""
        stopped = await drain(
            self.service,
            self.http,
            self.grpc,
            self.settings.shutdown_grace_seconds,
            self._stop_threads,
        )
        if self.health:
            # Open while draining, so probes read "not ready" rather than a refused connection.
            await self.health.close()
        return stopped

    def _stop_threads(self) -> None:
        """Join the server's threads (blocking: never on the event loop)."""
        if self.watcher:
            self.watcher.stop()
        if self.tls:
            self.tls.stop()
        self.manager.stop()
        self.service.stop()
        if self.share:
            self.share.stop()


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
    tune_for_serving()
    return uvloop.run(_main(settings))
