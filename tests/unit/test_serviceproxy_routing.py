"""The service proxy's routing table, fed plain API objects: selectors, readiness, terminating
pods, named target ports, ClusterIPs, and relists."""

from __future__ import annotations

from typing import Any

from modelship_localcluster.serviceproxy.hosts import ServiceIP, ServiceName
from modelship_localcluster.serviceproxy.routing import (
    Endpoint,
    Route,
    RoutingTable,
    Unroutable,
)

WEB = ServiceName("ns", "web")


def service(
    name: str = "web",
    namespace: str = "ns",
    selector: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    cluster_ip: str = "10.96.0.10",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"app": "web"} if selector is None else selector,
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": ports
            if ports is not None
            else [
                {"name": "http", "port": 8501, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": 8500, "targetPort": 9000, "protocol": "TCP"},
            ],
            **spec,
        },
    }


def pod(
    name: str,
    ip: str | None = "127.77.0.2",
    namespace: str = "ns",
    labels: dict[str, str] | None = None,
    ready: bool = True,
    terminating: bool = False,
    phase: str = "Running",
    http_port: int = 8501,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app": "web"} if labels is None else labels,
    }
    if terminating:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return {
        "metadata": meta,
        "spec": {
            "containers": [
                {"name": "server", "ports": [{"name": "http", "containerPort": http_port}]}
            ]
        },
        "status": status,
    }


def table_with(*objects: dict[str, Any]) -> RoutingTable:
    table = RoutingTable()
    table.replace_services(o for o in objects if "containers" not in o.get("spec", {}))
    table.replace_pods(o for o in objects if "containers" in o.get("spec", {}))
    return table


def route(table: RoutingTable, port: int = 8501, host: Any = WEB) -> Route:
    result = table.resolve(host, port)
    assert isinstance(result, Route), result
    return result


def pod_names(table: RoutingTable, port: int = 8501) -> list[str]:
    return [e.pod for e in route(table, port).endpoints]


def test_selected_ready_pods_are_endpoints_in_name_order() -> None:
    table = table_with(service(), pod("b", "127.77.0.3"), pod("a", "127.77.0.2"))
    assert route(table).endpoints == (
        Endpoint("a", "127.77.0.2", 8501),
        Endpoint("b", "127.77.0.3", 8501),
    )


def test_selector_must_match_every_label_in_the_service_namespace() -> None:
    table = table_with(
        service(selector={"app": "web", "tier": "model"}),
        pod("both", labels={"app": "web", "tier": "model", "extra": "x"}),
        pod("one", labels={"app": "web"}),
        pod("other-value", labels={"app": "web", "tier": "db"}),
        pod("elsewhere", namespace="other", labels={"app": "web", "tier": "model"}),
    )
    assert pod_names(table) == ["both"]


def test_service_without_selector_has_no_endpoints() -> None:
    table = table_with(service(selector={}), pod("a"))
    assert route(table).endpoints == ()


def test_not_ready_ipless_finished_and_terminating_pods_are_left_out() -> None:
    table = table_with(
        service(),
        pod("ready"),
        pod("not-ready", ready=False),
        pod("no-ip", ip=None),
        pod("terminating", terminating=True),
        pod("succeeded", phase="Succeeded"),
        pod("failed", phase="Failed"),
    )
    assert pod_names(table) == ["ready"]


def test_publish_not_ready_addresses_keeps_not_ready_but_not_terminating_pods() -> None:
    table = table_with(
        service(publishNotReadyAddresses=True),
        pod("not-ready", ready=False),
        pod("terminating", terminating=True),
    )
    assert pod_names(table) == ["not-ready"]


def test_named_target_port_is_resolved_on_each_pod() -> None:
    table = table_with(service(), pod("a", http_port=8501), pod("b", http_port=9501))
    assert [e.port for e in route(table).endpoints] == [8501, 9501]


def test_pod_without_the_named_port_is_not_an_endpoint_of_that_port_only() -> None:
    unnamed = pod("unnamed")
    unnamed["spec"]["containers"][0]["ports"] = []
    table = table_with(service(), pod("named"), unnamed)
    assert pod_names(table, 8501) == ["named"]
    assert pod_names(table, 8500) == ["named", "unnamed"]


def test_numeric_target_port_and_default_target_port() -> None:
    table = table_with(
        service(ports=[{"port": 8500, "targetPort": 9000}, {"port": 7000}]), pod("a")
    )
    assert [e.port for e in route(table, 8500).endpoints] == [9000]
    assert [e.port for e in route(table, 7000).endpoints] == [7000]


def test_unknown_service_port_and_cluster_ip() -> None:
    table = table_with(service(), pod("a"))
    assert table.resolve(ServiceName("ns", "nope"), 8501) == Unroutable("no service ns/nope")
    assert table.resolve(WEB, 1234) == Unroutable("service ns/web has no port 1234")
    assert table.resolve(ServiceIP("10.96.0.99"), 8501) == Unroutable("no service 10.96.0.99")
    assert route(table, host=ServiceIP("10.96.0.10")).service == WEB


def test_udp_ports_are_not_routed() -> None:
    table = table_with(service(ports=[{"port": 53, "protocol": "UDP"}]), pod("a"))
    assert isinstance(table.resolve(WEB, 53), Unroutable)


def test_pod_events_move_it_in_and_out_of_rotation() -> None:
    table = table_with(service(), pod("a"))
    assert table.apply_pod("ADDED", pod("b", ready=False)) == set()
    assert pod_names(table) == ["a"]
    assert table.apply_pod("MODIFIED", pod("b")) == {WEB}
    assert pod_names(table) == ["a", "b"]
    # Deletion starts: the pod leaves at once, before it is gone.
    assert table.apply_pod("MODIFIED", pod("a", terminating=True)) == {WEB}
    assert pod_names(table) == ["b"]
    assert table.apply_pod("DELETED", pod("a", terminating=True)) == set()
    assert table.apply_pod("MODIFIED", pod("b", labels={"app": "other"})) == {WEB}
    assert pod_names(table) == []


def test_pod_ip_change_is_seen() -> None:
    table = table_with(service(), pod("a", "127.77.0.2"))
    assert table.apply_pod("MODIFIED", pod("a", "127.77.0.9")) == {WEB}
    assert [e.ip for e in route(table).endpoints] == ["127.77.0.9"]


def test_pods_that_arrive_before_their_service_are_found() -> None:
    table = RoutingTable()
    table.apply_pod("ADDED", pod("a"))
    assert table.apply_service("ADDED", service()) == {WEB}
    assert pod_names(table) == ["a"]


def test_service_changes_selector_ports_and_cluster_ip() -> None:
    table = table_with(service(), pod("a"), pod("b", labels={"app": "b"}))
    changed = table.apply_service(
        "MODIFIED", service(selector={"app": "b"}, cluster_ip="10.96.1.1")
    )
    assert changed == {WEB}
    assert pod_names(table) == ["b"]
    assert isinstance(table.resolve(ServiceIP("10.96.0.10"), 8501), Unroutable)
    assert route(table, host=ServiceIP("10.96.1.1")).service == WEB


def test_deleted_service_is_unroutable() -> None:
    table = table_with(service(), pod("a"))
    assert table.apply_service("DELETED", service()) == {WEB}
    assert WEB not in table
    assert isinstance(table.resolve(WEB, 8501), Unroutable)
    assert isinstance(table.resolve(ServiceIP("10.96.0.10"), 8501), Unroutable)


def test_relist_drops_what_disappeared_while_the_watch_was_down() -> None:
    other = ServiceName("ns", "other")
    table = table_with(
        service(),
        service("other", selector={"app": "other"}, cluster_ip="10.96.0.11"),
        pod("a"),
        pod("b", "127.77.0.3"),
    )
    assert table.replace_pods([pod("b", "127.77.0.3")]) == {WEB}
    assert pod_names(table) == ["b"]
    assert table.replace_services([service()]) == {other}
    assert other not in table
    assert table.replace_services([service()]) == set()


def test_headless_service_is_routed_by_name() -> None:
    table = table_with(service(cluster_ip="None"), pod("a"))
    assert pod_names(table) == ["a"]
    assert isinstance(table.resolve(ServiceIP("10.96.0.10"), 8501), Unroutable)
