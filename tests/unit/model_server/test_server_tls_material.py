"""TLS material: TF Serving's SSLConfig and the cert-manager folder, checked at load; a reload
takes only material that works, and keeps the previous one otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_server.tls import CertDir, SslConfigFile, TlsError, TlsReloader, check
from tls_certs import CertificateAuthority

pytestmark = pytest.mark.unit


def _folder(path: Path, ca: CertificateAuthority, name: str = "server") -> Path:
    issued = ca.issue(name)
    path.mkdir(exist_ok=True)
    (path / "tls.crt").write_bytes(issued.cert_pem)
    (path / "tls.key").write_bytes(issued.key_pem)
    (path / "ca.crt").write_bytes(ca.pem)
    return path


def _inline(pem: bytes) -> str:
    return pem.decode().replace("\n", "\\n")


def test_ssl_config_file_reads_pem_texts_inline(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    issued = ca.issue("server")
    config = tmp_path / "ssl.config"
    config.write_text(
        f'server_key: "{_inline(issued.key_pem)}"\n'
        f'server_cert: "{_inline(issued.cert_pem)}"\n'
        f'custom_ca: "{_inline(ca.pem)}"\n'
        "client_verify: true\n"
    )
    material = check(SslConfigFile(str(config)))
    assert material.cert == issued.cert_pem
    assert material.ca == ca.pem
    assert material.client_verify


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('server_cert: "x"', "server_key is empty"),
        ('server_key: "/etc/tls/key.pem" server_cert: "/etc/tls/cert.pem"', "do not load"),
        ("client_verify: maybe", "client_verify"),
    ],
)
def test_ssl_config_file_errors_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "ssl.config"
    config.write_text(text)
    with pytest.raises(TlsError, match=fragment):
        check(SslConfigFile(str(config)))


def test_client_verify_needs_a_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    issued = ca.issue("server")
    config = tmp_path / "ssl.config"
    config.write_text(
        f'server_key: "{_inline(issued.key_pem)}" server_cert: "{_inline(issued.cert_pem)}" '
        "client_verify: true"
    )
    with pytest.raises(TlsError, match="client_verify needs custom_ca"):
        check(SslConfigFile(str(config)))
    folder = _folder(tmp_path / "tls", ca)
    (folder / "ca.crt").unlink()
    check(CertDir(str(folder), client_verify=False))
    with pytest.raises(TlsError, match=r"ca\.crt is missing or empty"):
        check(CertDir(str(folder), client_verify=True))


def test_reload_takes_new_material_and_refuses_broken_material(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    folder = _folder(tmp_path / "tls", ca, "first")
    reloader = TlsReloader(CertDir(str(folder), client_verify=False), poll_seconds=0)
    assert reloader.poll() is False  # unchanged
    listening = reloader.ssl_context()
    grpc_listening = reloader.grpc_ssl_context()

    # A key that does not fit the certificate (a half-written update): the old one stays.
    (folder / "tls.key").write_bytes(ca.issue("other").key_pem)
    assert reloader.poll() is False
    assert reloader.reloads == 0

    second = ca.issue("second")
    (folder / "tls.crt").write_bytes(second.cert_pem)
    (folder / "tls.key").write_bytes(second.key_pem)
    assert reloader.poll() is True
    assert reloader.reloads == 1
    # Both listeners keep their listening contexts (their SNI callbacks hand out the new ones),
    # and each protocol keeps its own ALPN.
    assert reloader.ssl_context() is listening
    assert reloader.grpc_ssl_context() is grpc_listening
    assert reloader._context is not listening
    assert reloader._grpc_context is not grpc_listening
