"""Pod addresses on loopback: every pod gets one of its own, so servers in different pods can
listen on the same port."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Collection

DEFAULT_RANGE = "127.77.0.0/16"


class AddressesExhaustedError(Exception):
    """No free pod address is left."""


class AddressPool:
    """Addresses of `cidr` with last octet 1..254, each held by one pod uid at a time."""

    def __init__(self, cidr: str = DEFAULT_RANGE) -> None:
        self._network = ipaddress.IPv4Network(cidr)
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()

    def usable(self, address: str) -> bool:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        return ip in self._network and int(ip) & 0xFF not in (0, 255)

    def allocate(
        self, uid: str, preferred: str | None = None, elsewhere: Collection[str] = ()
    ) -> str:
        """The uid's address: the one it holds, else `preferred` when usable and free (a pod
        keeps its IP across a restart of this component), else the lowest free one.
        `elsewhere`: addresses pods of other nodes hold (another process-pods instance
        hands out addresses from the same range)."""
        with self._lock:
            if uid in self._held:
                return self._held[uid]
            taken = set(self._held.values()) | set(elsewhere)
            # The pod's address stays even if the range changed: the API refuses a new one.
            if preferred and _loopback(preferred) and preferred not in taken:
                self._held[uid] = preferred
                return preferred
            for ip in self._network.hosts():
                address = str(ip)
                if int(ip) & 0xFF in (0, 255) or address in taken:
                    continue
                self._held[uid] = address
                return address
        raise AddressesExhaustedError(f"no free pod address left in {self._network}")

    def release(self, uid: str) -> None:
        with self._lock:
            self._held.pop(uid, None)

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False
