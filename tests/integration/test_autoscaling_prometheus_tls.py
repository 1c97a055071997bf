"""The autoscaler's Prometheus client against a real Prometheus served over TLS that asks for a
client certificate (its --web.config.file), as a platform team's Prometheus may be: the CA and
client pair the chart mounts from a cert-manager-shaped Secret let it in; anything less is refused
with a message naming the address, never with a crash."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelship_localcluster.pki import CertificateAuthority
from modelship_operator.autoscaling.prometheus import PrometheusClient, PrometheusUnavailable
from storage_servers import free_port, serve

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not Path(PROMETHEUS).exists():
        pytest.skip(f"no Prometheus binary at {PROMETHEUS} (hack/bootstrap.sh installs it)")
    root = tmp_path_factory.mktemp("prometheus-tls")
    ca = CertificateAuthority(root / "pki")
    server = ca.issue(
        "server", "prometheus", server_names=("localhost",), server_ips=("127.0.0.1",)
    )
    ca.issue("client", "modelship-operator")
    (root / "web.yml").write_text(
        "tls_server_config:\n"
        f"  cert_file: {server.cert}\n"
        f"  key_file: {server.key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {ca.pair.cert}\n"
    )
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1s\n")
    port = free_port()
    command = [
        PROMETHEUS,
        f"--config.file={root / 'prometheus.yml'}",
        f"--web.config.file={root / 'web.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with serve(command, port, root / "prometheus.log"):
        yield f"https://127.0.0.1:{port}", root / "pki"


def test_mutual_tls_with_the_mounted_ca_and_client_pair(tls_prometheus: tuple[str, Path]) -> None:
    url, pki = tls_prometheus
    client = PrometheusClient(
        url,
        ca_file=str(pki / "ca.crt"),
        cert_file=str(pki / "client.crt"),
        key_file=str(pki / "client.key"),
    )
    ((labels, value),) = client.query("vector(42)")
    assert (labels, value) == ({}, 42.0)


def test_without_a_client_certificate_prometheus_refuses(tls_prometheus: tuple[str, Path]) -> None:
    url, pki = tls_prometheus
    client = PrometheusClient(url, ca_file=str(pki / "ca.crt"))
    with pytest.raises(PrometheusUnavailable) as refused:
        client.query("vector(1)")
    assert "127.0.0.1" in str(refused.value)


def test_an_unknown_server_certificate_is_refused_unless_told_to_skip(
    tls_prometheus: tuple[str, Path], tmp_path: Path
) -> None:
    url, pki = tls_prometheus
    stranger = CertificateAuthority(tmp_path / "other")
    pair = {"cert_file": str(pki / "client.crt"), "key_file": str(pki / "client.key")}
    with pytest.raises(PrometheusUnavailable) as refused:
        PrometheusClient(url, ca_file=str(stranger.pair.cert), **pair).query("vector(1)")
    assert "certificate" in str(refused.value).lower()
    skipping = PrometheusClient(url, insecure_skip_verify=True, **pair)
    assert skipping.query("vector(1)")[0].value == 1.0
