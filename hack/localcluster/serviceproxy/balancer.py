"""The endpoint choice: round robin per Service port, one turn per client connection."""

from __future__ import annotations

from collections import defaultdict

from .hosts import ServiceName
from .routing import Endpoint, Route


class RoundRobin:
    def __init__(self) -> None:
        self._turns: defaultdict[tuple[ServiceName, int], int] = defaultdict(int)

    def order(self, route: Route) -> list[Endpoint]:
        """Every endpoint once, starting at this connection's turn: the first is the choice,
        the rest are where to go next when a pod refuses the connection."""
        endpoints = route.endpoints
        if not endpoints:
            return []
        key = (route.service, route.port)
        start = self._turns[key] % len(endpoints)
        self._turns[key] = start + 1
        return [*endpoints[start:], *endpoints[:start]]

    def forget(self, service: ServiceName) -> None:
        """Drop the turns of a deleted Service, so memory follows the Services that exist."""
        for key in [k for k in self._turns if k[0] == service]:
            del self._turns[key]
