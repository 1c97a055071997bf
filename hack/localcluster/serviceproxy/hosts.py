"""Which Service a client names: `<svc>.<ns>.svc[.cluster.local]`, `<svc>.<ns>`, or a
ClusterIP, with the port from the request target."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class ServiceName:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServiceIP:
    address: str

    def __str__(self) -> str:
        return self.address


ServiceHost = ServiceName | ServiceIP


def split_authority(authority: str, default_port: int) -> tuple[str, int] | None:
    """`host:port`, `host`, `[v6]:port` → (host, port); None when the port is not a number."""
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = authority.rpartition(":")
        if not colon:
            host, port_text = authority, ""
    if not port_text:
        return (host, default_port) if host else None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return (host, int(port_text)) if host else None


def parse_service_host(host: str) -> ServiceHost | None:
    """The Service a host names, or None when it cannot name one (e.g. `example.com`)."""
    host = host.lower().rstrip(".")
    try:
        return ServiceIP(str(ipaddress.ip_address(host)))
    except ValueError:
        pass
    labels = host.split(".")
    suffix = ["svc", *CLUSTER_DOMAIN.split(".")]
    for tail in (suffix, suffix[:1], []):
        if len(labels) == 2 + len(tail) and labels[2:] == tail:
            name, namespace = labels[0], labels[1]
            if name and namespace:
                return ServiceName(namespace, name)
    return None
