"""The service proxy's reading of hosts, authorities and request heads."""

from __future__ import annotations

import pytest
from modelship_localcluster.serviceproxy.hosts import (
    ServiceIP,
    ServiceName,
    parse_service_host,
    split_authority,
)
from modelship_localcluster.serviceproxy.request_head import (
    CHUNKED,
    BadHead,
    Destination,
    parse_head,
)


@pytest.mark.parametrize(
    "host",
    [
        "web.ns.svc",
        "web.ns.svc.cluster.local",
        "web.ns",
        "WEB.NS.SVC",
        "web.ns.svc.cluster.local.",
    ],
)
def test_service_dns_names(host: str) -> None:
    assert parse_service_host(host) == ServiceName("ns", "web")


@pytest.mark.parametrize(
    "host", ["web", "example.com.au", "a.b.c.d", "web.ns.svc.other.local", ".ns.svc", "web..svc"]
)
def test_names_that_are_not_services(host: str) -> None:
    assert parse_service_host(host) is None


def test_cluster_ips() -> None:
    assert parse_service_host("10.96.0.10") == ServiceIP("10.96.0.10")
    assert parse_service_host("fd00::a") == ServiceIP("fd00::a")


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("web.ns.svc:8501", ("web.ns.svc", 8501)),
        ("web.ns.svc", ("web.ns.svc", 80)),
        ("10.96.0.1:443", ("10.96.0.1", 443)),
        ("[fd00::a]:8500", ("fd00::a", 8500)),
        ("[fd00::a]", ("fd00::a", 80)),
        ("web:port", None),
        ("web:0", None),
        ("web:70000", None),
        (":8501", None),
        ("[fd00::a", None),
    ],
)
def test_split_authority(authority: str, expected: tuple[str, int] | None) -> None:
    assert split_authority(authority, 80) == expected


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_absolute_form_target() -> None:
    got = parse_head(
        head("POST http://web.ns.svc:8501/v1/models/m:predict HTTP/1.1", "Host: web.ns.svc:8501")
    )
    assert got == Destination("web.ns.svc", 8501, tunnel=False)


def test_absolute_form_without_port_or_path_and_with_query() -> None:
    assert parse_head(head("GET http://web.ns HTTP/1.1")) == Destination("web.ns", 80, False)
    assert parse_head(head("GET http://web.ns:81?x=1 HTTP/1.0")) == Destination("web.ns", 81, False)


def test_connect_authority() -> None:
    got = parse_head(head("CONNECT web.ns.svc:8500 HTTP/1.1", "Host: web.ns.svc:8500"))
    assert got == Destination("web.ns.svc", 8500, tunnel=True)


def test_origin_form_uses_the_host_header() -> None:
    got = parse_head(head("GET /v1/models/m HTTP/1.1", "Accept: */*", "hOsT:  web.ns.svc:8501 "))
    assert got == Destination("web.ns.svc", 8501, tunnel=False)


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /v1/models/m HTTP/1.1",  # no Host header
        "CONNECT web.ns.svc HTTP/1.1",  # CONNECT without a port
        "GET https://web.ns.svc/ HTTP/1.1",
        "GET http://web.ns.svc:x/ HTTP/1.1",
        "GET http://web.ns.svc/ HTTP/2",
        "GARBAGE",
    ],
)
def test_bad_heads_are_400(request_line: str) -> None:
    got = parse_head(head(request_line))
    assert isinstance(got, BadHead)
    assert got.status == 400


def test_request_framing_from_the_head() -> None:
    line = "POST http://web.ns.svc:8501/p HTTP/1.1"
    assert parse_head(head(line, "Content-Length: 12")) == Destination(
        "web.ns.svc", 8501, tunnel=False, body_length=12
    )
    chunked = parse_head(head(line, "Content-Length: 12", "Transfer-Encoding: gzip, chunked"))
    assert isinstance(chunked, Destination)
    assert chunked.body_length == CHUNKED
    upgrade = parse_head(head(line, "Connection: keep-alive, Upgrade", "Upgrade: websocket"))
    assert isinstance(upgrade, Destination)
    assert (upgrade.body_length, upgrade.upgrade) == (0, True)
    assert parse_head(head(line, "Content-Length: -1")) == BadHead(400, "bad Content-Length '-1'")
