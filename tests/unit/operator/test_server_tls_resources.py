"""spec.server.tls: the Deployment mounts the Secret and points the server at it; probes, the
version check and scrapes use the plain health port; status.url is https; a server that will
not start for want of ca.crt is reported with its own message."""

from __future__ import annotations

from typing import Any

import pytest
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.controller.status import pod_problem
from modelship_operator.controller.version import VersionProber
from modelship_operator.resources.deployment import SERVER_CONTAINER, build_deployment
from modelship_operator.resources.names import (
    HEALTH_PORT,
    REST_PORT,
    ModelDeploymentRef,
    monitoring_port,
    rest_url,
)
from modelship_server import cli
from pydantic import ValidationError

pytestmark = pytest.mark.unit

REF = ModelDeploymentRef(name="m", namespace="ns", uid="u-1", generation=1)


def _spec(**server: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"storageUri": "s3://b/m", "server": server})


def _template(spec: ModelDeploymentSpec) -> dict[str, Any]:
    template: dict[str, Any] = build_deployment(REF, spec)["spec"]["template"]
    return template


def test_tls_mounts_the_secret_and_passes_the_flags() -> None:
    spec = _spec(tls={"secretName": "m-tls", "clientAuth": True})
    template = _template(spec)
    pod = template["spec"]
    (server,) = pod["containers"]
    assert {"name": "tls", "secret": {"secretName": "m-tls", "defaultMode": 0o440}} in pod[
        "volumes"
    ]
    assert {"name": "tls", "mountPath": "/etc/modelship/tls", "readOnly": True} in server[
        "volumeMounts"
    ]
    assert "--ssl_cert_dir=/etc/modelship/tls" in server["args"]
    assert "--ssl_client_verify=true" in server["args"]
    assert f"--health_port={HEALTH_PORT}" in server["args"]
    assert {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"} in server["ports"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["httpGet"]["port"] == "health"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(HEALTH_PORT)
    # The flags parse as the server would read them (its own parser, not a copy of it).
    parsed = cli.build_parser().parse_args(server["args"])
    assert parsed.ssl_cert_dir == "/etc/modelship/tls"
    assert parsed.ssl_client_verify is True
    assert parsed.health_port == HEALTH_PORT
    assert rest_url(REF, spec).startswith(f"https://m.ns.svc:{REST_PORT}/")
    assert monitoring_port(spec) == HEALTH_PORT


def test_tls_without_client_auth_passes_no_verify_flag() -> None:
    (server,) = _template(_spec(tls={"secretName": "m-tls"}))["spec"]["containers"]
    assert "--ssl_cert_dir=/etc/modelship/tls" in server["args"]
    assert not any(a.startswith("--ssl_client_verify") for a in server["args"])


def test_without_tls_nothing_changes() -> None:
    spec = _spec()
    template = _template(spec)
    (server,) = template["spec"]["containers"]
    assert not any(a.startswith(("--ssl", "--health_port")) for a in server["args"])
    assert [p["name"] for p in server["ports"]] == ["grpc", "http"]
    assert server["readinessProbe"]["httpGet"]["port"] == "http"
    assert all(v["name"] != "tls" for v in template["spec"]["volumes"])
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(REST_PORT)
    assert rest_url(REF, spec).startswith("http://")


@pytest.mark.parametrize("secret", ["", "Not_A_Name", "x" * 254])
def test_bad_secret_names_are_refused(secret: str) -> None:
    with pytest.raises(ValidationError):
        _spec(tls={"secretName": secret})


def test_version_probe_uses_the_health_port() -> None:
    asked: list[str] = []

    def fetch(url: str, timeout: float) -> dict[str, Any]:
        asked.append(url)
        return {"model_version_status": [{"version": "3", "state": "AVAILABLE"}]}

    pod = {"status": {"podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]}}
    prober = VersionProber(fetch=fetch)
    spec = _spec(tls={"secretName": "m-tls"})
    assert prober.served_version(("ns", "m"), "m", [pod], port=monitoring_port(spec)) == "3"
    assert asked == [f"http://10.0.0.7:{HEALTH_PORT}/v1/models/m"]


def test_a_server_refusing_its_tls_material_is_reported_with_its_reason() -> None:
    reason = (
        "modelship-server: error: TLS: /etc/modelship/tls/ca.crt is missing or empty: client "
        "certificate verification (clientAuth) needs the CA that signs client certificates as "
        "ca.crt in the Secret"
    )
    pod = {
        "metadata": {"name": "m-abc"},
        "status": {
            "containerStatuses": [
                {
                    "name": SERVER_CONTAINER,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 2, "message": reason + "\n"}},
                }
            ]
        },
    }
    problem = pod_problem(pod)
    assert problem is not None
    assert problem.stalls
    assert "ca.crt is missing" in problem.message
    assert problem.message.endswith(f"last exit: {reason}")
