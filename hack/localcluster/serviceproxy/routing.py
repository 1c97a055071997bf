"""The routing table: every Service and its ready endpoints, kept from watch events. Pure state,
no I/O; one thread (the proxy's event loop) reads and changes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .hosts import ServiceHost, ServiceIP, ServiceName
from .objects import PodInfo, ServiceInfo, pod_from_object, service_from_object

DELETED = "DELETED"


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.pod} {self.ip}:{self.port}"


@dataclass(frozen=True)
class Route:
    """A Service port and its ready endpoints, in a stable order (possibly none)."""

    service: ServiceName
    port: int
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Unroutable:
    """The host or port names no Service port; `reason` is one line for the client."""

    reason: str


def is_endpoint(service: ServiceInfo, pod: PodInfo) -> bool:
    """A ready address of the Service, as an EndpointSlice would mark it: a terminating or
    finished pod leaves at once; a not-ready one only counts if the Service publishes those."""
    if not service.selects(pod) or not pod.ip or pod.terminating or pod.finished:
        return False
    return pod.ready or service.publish_not_ready


class RoutingTable:
    def __init__(self) -> None:
        self._services: dict[ServiceName, ServiceInfo] = {}
        self._by_ip: dict[str, ServiceName] = {}
        # Pods by namespace, then name: a Service only ever selects pods of its own namespace.
        self._pods: dict[str, dict[str, PodInfo]] = {}
        # The ready pods of each Service, by pod name.
        self._ready: dict[ServiceName, dict[str, PodInfo]] = {}

    # ---- changes; each returns the Services it changed or removed --------------------------

    def apply_service(self, event: str, obj: dict[str, Any]) -> set[ServiceName]:
        info = service_from_object(obj)
        if event == DELETED:
            return self._remove_service(info.service)
        return self._put_service(info)

    def apply_pod(self, event: str, obj: dict[str, Any]) -> set[ServiceName]:
        pod = pod_from_object(obj)
        in_namespace = self._pods.setdefault(pod.namespace, {})
        if event == DELETED:
            in_namespace.pop(pod.name, None)
        else:
            in_namespace[pod.name] = pod
        changed = set()
        for info in self._services_in(pod.namespace):
            ready = self._ready[info.service]
            before = ready.get(pod.name)
            if event != DELETED and is_endpoint(info, pod):
                ready[pod.name] = pod
            else:
                ready.pop(pod.name, None)
            if ready.get(pod.name) != before:
                changed.add(info.service)
        return changed

    def replace_services(self, objects: Iterable[dict[str, Any]]) -> set[ServiceName]:
        """The state after a fresh list: Services gone while the watch was down go too."""
        fresh = {info.service: info for info in map(service_from_object, objects)}
        changed = set()
        for name in set(self._services) - set(fresh):
            changed |= self._remove_service(name)
        for info in fresh.values():
            changed |= self._put_service(info)
        return changed

    def replace_pods(self, objects: Iterable[dict[str, Any]]) -> set[ServiceName]:
        self._pods = {}
        for pod in map(pod_from_object, objects):
            self._pods.setdefault(pod.namespace, {})[pod.name] = pod
        changed = set()
        for info in self._services.values():
            changed |= self._put_service(info)
        return changed

    # ---- lookups ----------------------------------------------------------------------------

    def resolve(self, host: ServiceHost, port: int) -> Route | Unroutable:
        name = self._by_ip.get(host.address) if isinstance(host, ServiceIP) else host
        info = self._services.get(name) if name is not None else None
        if info is None:
            return Unroutable(f"no service {host}")
        service_port = info.port(port)
        if service_port is None:
            return Unroutable(f"service {info.service} has no port {port}")
        endpoints = []
        for pod_name, pod in sorted(self._ready[info.service].items()):
            target = service_port.target
            number = target if isinstance(target, int) else pod.named_ports.get(target)
            if number is not None and pod.ip:
                endpoints.append(Endpoint(pod_name, pod.ip, number))
        return Route(info.service, port, tuple(endpoints))

    def ready_pods(self, service: ServiceName) -> list[str]:
        return sorted(self._ready.get(service, {}))

    def __contains__(self, service: ServiceName) -> bool:
        return service in self._services

    def __len__(self) -> int:
        return len(self._services)

    # ---- internals --------------------------------------------------------------------------

    def _services_in(self, namespace: str) -> list[ServiceInfo]:
        return [info for name, info in self._services.items() if name.namespace == namespace]

    def _put_service(self, info: ServiceInfo) -> set[ServiceName]:
        old = self._services.get(info.service)
        if old is not None:
            for ip in old.cluster_ips:
                self._by_ip.pop(ip, None)
        self._services[info.service] = info
        for ip in info.cluster_ips:
            self._by_ip[ip] = info.service
        pods = self._pods.get(info.service.namespace, {})
        ready = {name: pod for name, pod in pods.items() if is_endpoint(info, pod)}
        before = self._ready.get(info.service)
        self._ready[info.service] = ready
        return {info.service} if before != ready else set()

    def _remove_service(self, name: ServiceName) -> set[ServiceName]:
        info = self._services.pop(name, None)
        if info is None:
            return set()
        for ip in info.cluster_ips:
            self._by_ip.pop(ip, None)
        self._ready.pop(name, None)
        return {name}
