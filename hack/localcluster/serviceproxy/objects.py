"""The few fields of Pods and Services that routing needs, read from their API objects (plain
dicts as the apiserver sends them), so the table keeps little per object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .hosts import ServiceName

TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str | None
    ready: bool
    terminating: bool
    finished: bool
    # TCP container ports by name, for Services whose targetPort is a name.
    named_ports: dict[str, int]


@dataclass(frozen=True)
class ServicePort:
    port: int
    # A number, or the name of a container port looked up on each pod.
    target: int | str


@dataclass(frozen=True)
class ServiceInfo:
    service: ServiceName
    # None: no selector, so no pod is an endpoint (as the EndpointSlice controller does).
    selector: dict[str, str] | None
    cluster_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    publish_not_ready: bool

    def selects(self, pod: PodInfo) -> bool:
        if not self.selector or pod.namespace != self.service.namespace:
            return False
        return all(pod.labels.get(key) == value for key, value in self.selector.items())

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


def pod_from_object(obj: dict[str, Any]) -> PodInfo:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    named_ports = {
        port["name"]: int(port["containerPort"])
        for container in spec.get("containers") or []
        for port in container.get("ports") or []
        if port.get("name") and port.get("protocol", "TCP") == "TCP"
    }
    return PodInfo(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        ip=status.get("podIP") or None,
        ready=ready,
        terminating=meta.get("deletionTimestamp") is not None,
        finished=status.get("phase") in TERMINAL_PHASES,
        named_ports=named_ports,
    )


def service_from_object(obj: dict[str, Any]) -> ServiceInfo:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    ports = tuple(
        ServicePort(int(p["port"]), _target(p.get("targetPort"), int(p["port"])))
        for p in spec.get("ports") or []
        if p.get("protocol", "TCP") == "TCP"
    )
    return ServiceInfo(
        service=ServiceName(meta.get("namespace", ""), meta.get("name", "")),
        selector=dict(spec["selector"]) if spec.get("selector") else None,
        cluster_ips=tuple(ips),
        ports=ports,
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
    )


def _target(value: Any, port: int) -> int | str:
    if value is None:
        return port  # the API defaults targetPort to port
    return value if isinstance(value, int | str) else port
