"""Round robin per Service port, one turn per connection, the rest as fallbacks in order."""

from __future__ import annotations

from modelship_localcluster.serviceproxy.balancer import RoundRobin
from modelship_localcluster.serviceproxy.hosts import ServiceName
from modelship_localcluster.serviceproxy.routing import Endpoint, Route

WEB = ServiceName("ns", "web")
A, B, C = (Endpoint(name, f"127.77.0.{i}", 8501) for i, name in enumerate("abc", 2))


def test_each_connection_starts_at_the_next_endpoint_and_falls_back_to_the_rest() -> None:
    balancer = RoundRobin()
    route = Route(WEB, 8501, (A, B, C))
    assert [balancer.order(route) for _ in range(4)] == [
        [A, B, C],
        [B, C, A],
        [C, A, B],
        [A, B, C],
    ]


def test_turns_are_kept_per_service_port() -> None:
    balancer = RoundRobin()
    http, grpc = Route(WEB, 8501, (A, B)), Route(WEB, 8500, (A, B))
    assert balancer.order(http)[0] == A
    assert balancer.order(grpc)[0] == A
    assert balancer.order(http)[0] == B


def test_fewer_endpoints_than_the_turn_still_spreads() -> None:
    balancer = RoundRobin()
    for _ in range(5):
        balancer.order(Route(WEB, 8501, (A, B, C)))
    firsts = [balancer.order(Route(WEB, 8501, (A, B)))[0] for _ in range(4)]
    assert sorted(e.pod for e in firsts) == ["a", "a", "b", "b"]


def test_no_endpoints_no_order() -> None:
    assert RoundRobin().order(Route(WEB, 8501, ())) == []


def test_forget_restarts_a_deleted_service() -> None:
    balancer = RoundRobin()
    route = Route(WEB, 8501, (A, B))
    balancer.order(route)
    balancer.forget(WEB)
    assert balancer.order(route)[0] == A
