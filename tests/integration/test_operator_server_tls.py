"""spec.server.tls on the real control plane, served by a real model server on the process node:
the operator mounts a cert-manager-shaped Secret, the pod becomes Ready through the plain health
port, the operator reads the served version there, status.url is https, and the pod's REST and
gRPC ports speak mTLS: curl and grpcio with a client certificate get answers, without one they
are refused."""

from __future__ import annotations

import base64
import subprocess
from typing import Any

import grpc
import numpy as np
import pytest
from kube_helpers import apply, condition, get, model_deployment, new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster
from modelship_operator.resources.names import GRPC_PORT, REST_PORT
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tls_certs import CertificateAuthority, Issued, serial_of

PROCESS_LABEL = "node.modelship.dev/runs-processes"
DT_FLOAT = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_model_served_over_mtls_from_a_cert_manager_secret(
    operator: LocalCluster, tmp_path: Any
) -> None:
    ns = new_namespace(operator, "tls")
    operator.model_store_secret(ns)
    host = f"hp2.{ns}.svc"
    ca = CertificateAuthority()
    server_cert = ca.issue("hp2", hosts=(host, f"hp2.{ns}.svc.cluster.local"))
    client = ca.issue("client", server=False)
    client.write(tmp_path / "client")
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    apply(
        operator,
        ns,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hp2-tls"},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": _b64(server_cert.cert_pem),
                "tls.key": _b64(server_cert.key_pem),
                "ca.crt": _b64(ca.pem),
            },
        },
    )
    apply(
        operator,
        ns,
        model_deployment(
            "hp2",
            storageUri="s3://models/half-plus-two",
            storageSecretName="local-model-store",
            modelName="half_plus_two",
            nodeSelector={PROCESS_LABEL: "true"},
            tolerations=[{"key": PROCESS_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
            server={"tls": {"secretName": "hp2-tls", "clientAuth": True}},
        ),
    )

    def served() -> dict[str, Any] | None:
        md = get(operator, ns, "modeldeployment", "hp2")
        ready = condition(md, "Ready").get("status") == "True"
        return md if ready and md["status"].get("modelVersion") else None

    # Ready and the version both come through the plain health port: the kubelet's probes and
    # the operator's version check have no client certificate.
    md = wait_for("hp2 Ready with its version, over TLS", served, timeout=240)
    assert md["status"]["modelVersion"] == "1"
    assert md["status"]["url"] == f"https://{host}:{REST_PORT}/v1/models/half_plus_two"

    (pod,) = get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=hp2")["items"]
    ip = pod["status"]["podIP"]
    resolve = ["--resolve", f"{host}:{REST_PORT}:{ip}", "--cacert", str(tmp_path / "ca.crt")]
    url = f"https://{host}:{REST_PORT}/v1/models/half_plus_two:predict"
    body = ["-d", '{"instances": [1.0, 2.0, 5.0]}']
    cert = ["--cert", str(tmp_path / "client" / "cert.pem")]
    cert += ["--key", str(tmp_path / "client" / "key.pem")]
    out = _curl(*resolve, *cert, *body, url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.replace(" ", "") == '{"predictions":[2.5,3.0,4.5]}'
    # The certificate curl was shown is the Secret's.
    out = _curl(*resolve, *cert, "--write-out", "%{certs}", "-o", "/dev/null", url)
    assert out.returncode == 0, out.stderr
    shown = out.stdout[: out.stdout.index("-----END CERTIFICATE-----") + 25]
    shown = shown[shown.index("-----BEGIN CERTIFICATE-----") :]
    assert serial_of(shown.encode() + b"\n") == server_cert.serial
    refused = _curl(*resolve, *body, url)
    assert refused.returncode != 0, refused.stdout
    assert refused.stdout == ""

    _grpc_mtls(f"{ip}:{GRPC_PORT}", host, ca, client)


def _grpc_mtls(target: str, host: str, ca: CertificateAuthority, client: Issued) -> None:
    """TF Serving's Predict over gRPC: answered with a client certificate, refused without."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].dtype = DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.inputs["x"].float_val.append(3.0)
    options = [("grpc.ssl_target_name_override", host)]
    mutual = grpc.ssl_channel_credentials(ca.pem, client.key_pem, client.cert_pem)
    with grpc.secure_channel(target, mutual, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.Predict(request, timeout=30)
        y = reply.outputs["y"]
        assert (list(y.float_val) or np.frombuffer(y.tensor_content, np.float32).tolist()) == [3.5]
    anonymous = grpc.ssl_channel_credentials(ca.pem)
    with grpc.secure_channel(target, anonymous, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as no_cert:
            stub.Predict(request, timeout=30)
        assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE
