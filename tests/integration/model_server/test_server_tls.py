"""TLS on REST and gRPC with real clients: curl, grpcio with the TF Serving stubs, tritonclient;
mTLS refusing clients without a certificate; certificate rotation under a stream of requests."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from conftest import ServerFactory
from server_process import ServerProcess, free_port
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tls_certs import CertificateAuthority, Issued, serial_of
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu"
HOST = "127.0.0.1"
DT_FLOAT = 1


def _cert_dir(folder: Path, ca: CertificateAuthority, server: Issued, with_ca: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tls.crt").write_bytes(server.cert_pem)
    (folder / "tls.key").write_bytes(server.key_pem)
    if with_ca:
        (folder / "ca.crt").write_bytes(ca.pem)
    return folder


def _secret_volume(folder: Path, ca: CertificateAuthority, server: Issued) -> None:
    """Write the files as the kubelet writes a Secret volume: a timestamped folder, `..data`
    pointing to it, each key a link through `..data`; an update swaps `..data` in one rename."""
    folder.mkdir(parents=True, exist_ok=True)
    old = (folder / "..data").resolve() if (folder / "..data").is_symlink() else None
    stamp = folder / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    _cert_dir(stamp, ca, server)
    (folder / "..data_tmp").symlink_to(stamp.name)
    (folder / "..data_tmp").replace(folder / "..data")
    for name in ("tls.crt", "tls.key", "ca.crt"):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")
    if old is not None:
        for path in old.iterdir():
            path.unlink()
        old.rmdir()


def _wait_ready(server: ServerProcess, ready: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if ready():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"server not ready in {timeout}s:\n{server.log_tail()}")


def _https(server: ServerProcess) -> str:
    return f"https://{HOST}:{server.rest_port}"


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _predict_request(value: float) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = DT_FLOAT
    tensor.tensor_shape.dim.add().size = 1
    tensor.tensor_shape.dim.add().size = 1
    tensor.float_val.append(value)
    return request


def _grpc_predict(channel: grpc.Channel, value: float) -> float:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    reply = stub.Predict(_predict_request(value), timeout=30)
    y = reply.outputs["y"]
    values = list(y.float_val) or np.frombuffer(y.tensor_content, dtype=np.float32).tolist()
    assert len(values) == 1, y
    return float(values[0])


def _peer_serial(port: int, ca: CertificateAuthority, alpn: str) -> int:
    """The serial of the certificate a brand-new connection to port is shown."""
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    ctx.set_alpn_protocols([alpn])
    with (
        socket.create_connection((HOST, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(der)


def _triton_infer_http(client: triton_http.InferenceServerClient) -> list[float]:
    tensor = triton_http.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[4.0]], dtype=np.float32))
    result = client.infer("half_plus_two", [tensor])
    return [float(v) for v in result.as_numpy("y").ravel()]


def _triton_infer_grpc(client: triton_grpc.InferenceServerClient) -> list[float]:
    tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[4.0]], dtype=np.float32))
    result = client.infer("half_plus_two", [tensor])
    return [float(v) for v in result.as_numpy("y").ravel()]


def test_tls_from_a_tf_serving_ssl_config_file(
    testdata: Path, server_factory: ServerFactory, tmp_path: Path
) -> None:
    ca = CertificateAuthority()
    issued = ca.issue("server", hosts=(HOST, "localhost"))
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    config = tmp_path / "ssl.config"

    def inline(pem: bytes) -> str:
        return pem.decode().replace("\n", "\\n")

    # TF Serving's SSLConfig: the PEM texts themselves, inline (newlines escaped).
    config.write_text(
        f'server_key: "{inline(issued.key_pem)}"\n'
        f'server_cert: "{inline(issued.cert_pem)}"\n'
        f'custom_ca: "{inline(ca.pem)}"\n'
        "client_verify: false\n"
    )
    server = server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata / HALF_PLUS_TWO}",
        f"--ssl_config_file={config}",
        ready=False,
    )
    cafile = str(tmp_path / "ca.pem")
    with httpx.Client(
        base_url=_https(server), verify=ssl.create_default_context(cafile=cafile)
    ) as c:
        _wait_ready(server, lambda: c.get("/v2/health/ready").status_code == 200)

    # curl with --cacert: the TF Serving REST API over HTTPS.
    out = _curl(
        "--cacert",
        cafile,
        "-d",
        '{"instances": [1.0, 2.0, 5.0]}',
        f"{_https(server)}/v1/models/half_plus_two:predict",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.replace(" ", "") == '{"predictions":[2.5,3.0,4.5]}'
    # Without the CA, curl refuses the certificate; plain HTTP gets no answer.
    out = _curl(f"{_https(server)}/v2/health/ready")
    assert out.returncode == 60, (out.returncode, out.stderr)  # peer certificate not verified
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{HOST}:{server.rest_port}/v2/health/ready", timeout=5)

    # grpcio with SSL channel credentials and TF Serving's own stubs.
    creds = grpc.ssl_channel_credentials(root_certificates=ca.pem)
    with grpc.secure_channel(server.grpc_target, creds) as channel:
        assert _grpc_predict(channel, 3.0) == 3.5
    with grpc.insecure_channel(server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            _grpc_predict(channel, 3.0)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    # tritonclient, Open Inference Protocol v2, over HTTPS and gRPC with TLS.
    http_client = triton_http.InferenceServerClient(
        f"{HOST}:{server.rest_port}",
        ssl=True,
        ssl_context_factory=lambda: ssl.create_default_context(cafile=cafile),
    )
    try:
        assert http_client.is_model_ready("half_plus_two")
        assert _triton_infer_http(http_client) == [4.0]
    finally:
        http_client.close()
    grpc_client = triton_grpc.InferenceServerClient(
        server.grpc_target, ssl=True, root_certificates=cafile
    )
    try:
        assert grpc_client.is_server_ready()
        assert _triton_infer_grpc(grpc_client) == [4.0]
    finally:
        grpc_client.close()
    assert server.terminate() == 0


@dataclasses.dataclass(frozen=True)
class Mtls:
    server: ServerProcess
    ca: CertificateAuthority
    certs: Path  # the server's cert dir (ca.crt in it)
    client: Path  # cert.pem, key.pem of a client the CA signed
    stranger: Path  # the same, signed by another CA
    health: str


@pytest.fixture(scope="module")
def mtls(
    testdata: Path, server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Mtls:
    tmp_path = tmp_path_factory.mktemp("mtls")
    ca = CertificateAuthority()
    certs = _cert_dir(tmp_path / "tls", ca, ca.issue("server", hosts=(HOST,)))
    client = ca.issue("client", server=False)
    client.write(tmp_path / "client")
    stranger = CertificateAuthority("another CA").issue("stranger", server=False)
    stranger.write(tmp_path / "stranger")
    health_port = free_port()
    server = server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata / HALF_PLUS_TWO}",
        f"--ssl_cert_dir={certs}",
        "--ssl_client_verify",
        f"--health_port={health_port}",
        ready=False,
    )
    health = f"http://{HOST}:{health_port}"
    _wait_ready(server, lambda: httpx.get(f"{health}/v2/health/ready").status_code == 200)
    return Mtls(server, ca, certs, tmp_path / "client", tmp_path / "stranger", health)


def test_mtls_rest_refuses_clients_without_a_certificate(mtls: Mtls) -> None:
    server, certs, tmp_path = mtls.server, mtls.certs, mtls.client.parent
    cacert = ["--cacert", str(certs / "ca.crt")]
    url = f"{_https(server)}/v1/models/half_plus_two:predict"
    body = ["-d", '{"instances": [1.0]}']
    with_cert = [
        "--cert",
        str(tmp_path / "client" / "cert.pem"),
        "--key",
        str(tmp_path / "client" / "key.pem"),
    ]
    out = _curl(*cacert, *with_cert, *body, url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.replace(" ", "") == '{"predictions":[2.5]}'
    out = _curl(*cacert, *body, url)
    assert out.returncode != 0, out.stdout
    assert out.stdout == ""
    # A certificate from another CA is refused the same way.
    out = _curl(
        *cacert,
        "--cert",
        str(tmp_path / "stranger" / "cert.pem"),
        "--key",
        str(tmp_path / "stranger" / "key.pem"),
        *body,
        url,
    )
    assert out.returncode != 0, out.stdout
    assert out.stdout == ""


def test_mtls_grpc_refuses_clients_without_a_certificate(mtls: Mtls) -> None:
    server, ca, client = mtls.server, mtls.ca, mtls.client
    # gRPC: the handshake fails without a client certificate.
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca.pem)
    with grpc.secure_channel(server.grpc_target, anonymous) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            _grpc_predict(channel, 1.0)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    mutual = grpc.ssl_channel_credentials(
        ca.pem, (client / "key.pem").read_bytes(), (client / "cert.pem").read_bytes()
    )
    with grpc.secure_channel(server.grpc_target, mutual) as channel:
        assert _grpc_predict(channel, 1.0) == 2.5


def test_mtls_tritonclient(mtls: Mtls) -> None:
    server, certs, tmp_path = mtls.server, mtls.certs, mtls.client.parent
    # tritonclient with a client certificate, both protocols; without one, refused.
    grpc_client = triton_grpc.InferenceServerClient(
        server.grpc_target,
        ssl=True,
        root_certificates=str(certs / "ca.crt"),
        private_key=str(tmp_path / "client" / "key.pem"),
        certificate_chain=str(tmp_path / "client" / "cert.pem"),
    )
    try:
        assert _triton_infer_grpc(grpc_client) == [4.0]
    finally:
        grpc_client.close()

    def context(with_client_cert: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        if with_client_cert:
            ctx.load_cert_chain(tmp_path / "client" / "cert.pem", tmp_path / "client" / "key.pem")
        return ctx

    for with_client_cert in (True, False):
        http_client = triton_http.InferenceServerClient(
            f"{HOST}:{server.rest_port}",
            ssl=True,
            ssl_context_factory=lambda w=with_client_cert: context(w),
        )
        try:
            if with_client_cert:
                assert _triton_infer_http(http_client) == [4.0]
            else:
                # The server ends the handshake: the client reads a closed connection.
                with pytest.raises((InferenceServerException, OSError, HTTPException)):
                    _triton_infer_http(http_client)
        finally:
            http_client.close()


def test_mtls_health_port_serves_probes_and_no_data(mtls: Mtls) -> None:
    health = mtls.health
    # The plain health port answers probes and scrapes, and nothing that carries data.
    assert httpx.get(f"{health}/v1/models/half_plus_two").status_code == 200
    assert httpx.get(f"{health}/metrics").status_code == 200
    refused_predict = httpx.post(
        f"{health}/v1/models/half_plus_two:predict", json={"instances": [1.0]}
    )
    assert refused_predict.status_code == 404
    assert httpx.get(f"{health}/v1/models/half_plus_two/metadata").status_code == 404


def test_client_verify_without_a_ca_fails_naming_ca_crt(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    certs = _cert_dir(tmp_path / "tls", ca, ca.issue("server"), with_ca=False)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelship_server",
            "--model_base_path=/x",
            f"--ssl_cert_dir={certs}",
            "--ssl_client_verify",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert f"{certs / 'ca.crt'} is missing or empty" in out.stderr
    assert "Traceback" not in out.stderr


def test_rotation_new_connections_get_the_new_certificate_and_no_request_fails(
    testdata: Path, server_factory: ServerFactory, tmp_path: Path
) -> None:
    ca = CertificateAuthority()
    first = ca.issue("server-1", hosts=(HOST,))
    certs = tmp_path / "tls"
    _secret_volume(certs, ca, first)
    server = server_factory(
        "--model_name=half_plus_two",
        f"--model_base_path={testdata / HALF_PLUS_TWO}",
        f"--ssl_cert_dir={certs}",
        "--ssl_poll_wait_seconds=0.2",
        "--workers=2",
        ready=False,
    )
    verify = ssl.create_default_context(cadata=ca.pem.decode())
    with httpx.Client(base_url=_https(server), verify=verify) as c:
        _wait_ready(server, lambda: c.get("/v2/health/ready").status_code == 200)
    assert _peer_serial(server.rest_port, ca, "http/1.1") == first.serial
    assert _peer_serial(server.grpc_port, ca, "h2") == first.serial

    streams = _Streams(server, ca)
    threads = [
        threading.Thread(target=t)
        for t in (streams.rest_keep_alive, streams.rest_new_connections, streams.grpc_channel)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        second = ca.issue("server-2", hosts=(HOST,))
        _secret_volume(certs, ca, second)
        deadline = time.monotonic() + 30
        seen: tuple[int, int] = (0, 0)
        while time.monotonic() < deadline:
            # Several connections each: with --workers=2, every worker must have reloaded.
            rest = {_peer_serial(server.rest_port, ca, "http/1.1") for _ in range(6)}
            grpc_serials = {_peer_serial(server.grpc_port, ca, "h2") for _ in range(6)}
            if rest == {second.serial} and grpc_serials == {second.serial}:
                seen = (second.serial, second.serial)
                break
            time.sleep(0.2)
        assert seen == (second.serial, second.serial), "new connections still see the old cert"
        time.sleep(1.0)
    finally:
        streams.stop.set()
        for t in threads:
            t.join(60)
    assert streams.failures == []
    assert counts_at_least(streams.counts, {"rest": 10, "rest-new": 5, "grpc": 10})
    assert "TLS certificate reloaded" in server.log.read_text()
    assert server.terminate() == 0


def counts_at_least(counts: dict[str, int], floors: dict[str, int]) -> bool:
    return all(counts[k] > v for k, v in floors.items())


class _Streams:
    """Requests sent without pause until stop is set; every failure is recorded."""

    def __init__(self, server: ServerProcess, ca: CertificateAuthority) -> None:
        self.server = server
        self.ca = ca
        self.verify = ssl.create_default_context(cadata=ca.pem.decode())
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.counts = {"rest": 0, "rest-new": 0, "grpc": 0}

    def _predict(self, client: httpx.Client) -> None:
        reply = client.post("/v1/models/half_plus_two:predict", json={"instances": [1.0]})
        assert reply.json() == {"predictions": [2.5]}, reply.text

    def rest_keep_alive(self) -> None:
        """One keep-alive connection, opened before the rotation."""
        with httpx.Client(base_url=_https(self.server), verify=self.verify, timeout=30) as c:
            while not self.stop.is_set():
                try:
                    self._predict(c)
                    self.counts["rest"] += 1
                except Exception as exc:
                    self.failures.append(f"rest: {exc!r}")

    def rest_new_connections(self) -> None:
        """A new connection, and so a new handshake, per request."""
        while not self.stop.is_set():
            try:
                with httpx.Client(
                    base_url=_https(self.server), verify=self.verify, timeout=30
                ) as c:
                    self._predict(c)
                self.counts["rest-new"] += 1
            except Exception as exc:
                self.failures.append(f"rest-new: {exc!r}")

    def grpc_channel(self) -> None:
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca.pem)
        with grpc.secure_channel(self.server.grpc_target, creds) as channel:
            while not self.stop.is_set():
                try:
                    assert _grpc_predict(channel, 1.0) == 2.5
                    self.counts["grpc"] += 1
                except Exception as exc:
                    self.failures.append(f"grpc: {exc!r}")
