"""Pod DNS names for process pods, as a hosts file their processes see as /etc/hosts.

Kubernetes DNS answers `<hostname>.<subdomain>.<namespace>.svc(.cluster.local)` for a pod with
`hostname` and `subdomain` set (an Indexed Job sets the hostname to `<job>-<index>`) when a
headless Service named like the subdomain selects it. Process pods share this machine's network,
so this node keeps one hosts file with such a line for each of its running pods and every
container sees it at /etc/hosts (see sandbox.py).

Every running pod with both fields gets its names, Service or not: this node sees only its own
pods, and the Service's endpoints cannot say which pods it selects here, since the API refuses
loopback addresses in an EndpointSlice. Watching Services would only add lag between a pod
starting and its peers finding it. Pods that have finished
(Succeeded/Failed) are left out as they are out of a headless Service's endpoints; when two
pods claim one name (a Job's replacement pod next to the failed one it replaces), the newer wins.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
MARKER = "# Process pods of this node (hostname.subdomain.namespace.svc), kept by the node."


@dataclass(frozen=True)
class PodName:
    namespace: str
    hostname: str
    subdomain: str
    ip: str

    @property
    def names(self) -> tuple[str, str]:
        short = f"{self.hostname}.{self.subdomain}.{self.namespace}.svc"
        return short, f"{short}.{CLUSTER_DOMAIN}"


def pod_name(pod: Mapping[str, Any], ip: str) -> PodName | None:
    """The pod's DNS name, when its spec asks for one (hostname and subdomain)."""
    spec = pod.get("spec") or {}
    hostname, subdomain = spec.get("hostname"), spec.get("subdomain")
    if not hostname or not subdomain:
        return None
    namespace = str(pod["metadata"].get("namespace") or "default")
    return PodName(namespace, str(hostname), str(subdomain), ip)


def render(base: str, entries: Iterable[PodName]) -> str:
    """The machine's own hosts lines, then one line per pod; of entries sharing a name the last
    one wins."""
    owner: dict[str, PodName] = {}
    for entry in entries:
        owner[entry.names[0]] = entry
    lines = [base.rstrip("\n"), "", MARKER] if base.strip() else [MARKER]
    lines += [f"{e.ip}\t{' '.join(e.names)}" for e in sorted(owner.values(), key=_order)]
    return "\n".join(lines) + "\n"


def _order(entry: PodName) -> tuple[str, str, str]:
    return entry.namespace, entry.subdomain, entry.hostname


class HostsFile:
    """The node's hosts file; pod workers publish and withdraw their pod's name (thread-safe)."""

    def __init__(self, path: Path, base: str) -> None:
        self.path = path
        self._base = base
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, PodName]] = {}
        self._counter = itertools.count()
        self._write()

    def publish(self, uid: str, name: PodName) -> None:
        with self._lock:
            known = self._entries.get(uid)
            if known is not None and known[1] == name:
                return
            self._entries[uid] = (next(self._counter), name)
            self._write_locked()

    def withdraw(self, uid: str) -> None:
        with self._lock:
            if self._entries.pop(uid, None) is not None:
                self._write_locked()

    def text(self) -> str:
        with self._lock:
            return self._render()

    def _render(self) -> str:
        ordered = sorted(self._entries.values(), key=lambda item: item[0])
        return render(self._base, (name for _, name in ordered))

    def _write(self) -> None:
        with self._lock:
            self._write_locked()

    def _write_locked(self) -> None:
        write_in_place(self.path, self._render().encode())


def write_in_place(path: Path, data: bytes) -> None:
    """Rewrite the file's content in its inode: containers see it through a bind mount, which
    keeps pointing at the old inode when the file is replaced by a rename. One write, then
    truncate (not the other way round), so a reader never sees an empty file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
