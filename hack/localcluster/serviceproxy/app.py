"""The proxy process: watches of Services and Pods (one thread each, as the kubernetes client
blocks) feed the routing table on the event loop, which alone reads and changes it; the proxy
listens once both kinds have been listed, so an accepting port means a complete table."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from .hosts import ServiceName
from .kube_watch import KindWatcher, Object
from .routing import RoutingTable
from .server import ProxySettings, ServiceProxy

log = logging.getLogger(__name__)


class TableFeed:
    """Applies what the watch threads report, on the loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, proxy: ServiceProxy) -> None:
        self._loop = loop
        self._proxy = proxy
        self._table = proxy.table
        self.listed = {"services": asyncio.Event(), "pods": asyncio.Event()}

    def watcher(
        self, kind: str, list_call: Callable[..., Any], stop: threading.Event
    ) -> KindWatcher:
        replace, apply = {
            "services": (self._table.replace_services, self._table.apply_service),
            "pods": (self._table.replace_pods, self._table.apply_pod),
        }[kind]

        def on_list(items: list[Object]) -> None:
            self._loop.call_soon_threadsafe(self._listed, kind, replace, items)

        def on_event(event: str, obj: Object) -> None:
            self._loop.call_soon_threadsafe(self._changed, apply, event, obj)

        return KindWatcher(kind, list_call, on_list, on_event, stop)

    def _listed(
        self,
        kind: str,
        replace: Callable[[list[Object]], set[ServiceName]],
        items: list[Object],
    ) -> None:
        changed = replace(items)
        log.info("listed %d %s (%d services changed)", len(items), kind, len(changed))
        self._forget_deleted(changed)
        self.listed[kind].set()

    def _changed(
        self, apply: Callable[[str, Object], set[ServiceName]], event: str, obj: Object
    ) -> None:
        changed = apply(event, obj)
        for service in sorted(changed, key=str):
            if service not in self._table:
                log.info("service %s deleted", service)
                continue
            pods = self._table.ready_pods(service)
            log.info("endpoints %s: %s", service, ", ".join(pods) if pods else "none ready")
        self._forget_deleted(changed)

    def _forget_deleted(self, services: set[ServiceName]) -> None:
        for service in services:
            if service not in self._table:
                self._proxy.balancer.forget(service)


async def serve(kubeconfig: str | None, host: str, port: int, settings: ProxySettings) -> None:
    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    api = client.CoreV1Api(api_client)
    loop = asyncio.get_running_loop()
    proxy = ServiceProxy(RoutingTable(), settings)
    feed = TableFeed(loop, proxy)
    stop = threading.Event()
    watchers = [
        feed.watcher("services", api.list_service_for_all_namespaces, stop),
        feed.watcher("pods", api.list_pod_for_all_namespaces, stop),
    ]
    for watcher in watchers:
        threading.Thread(target=watcher.run, name=f"watch-{watcher.kind}", daemon=True).start()
    for listed in feed.listed.values():
        await listed.wait()
    await proxy.start(host, port)
    log.info("serving on %s:%d", host, port)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping")
    stop.set()
    await proxy.stop()
