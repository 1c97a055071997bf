"""No log of the operator or of the model-server pods carries a storage credential.

An S3 server of the test's own takes a canary access key and secret key (random, made for this
run). A ModelDeployment fetches half-plus-two with them through a Secret and becomes Ready on
the process node (init container `modelship fetch`, then the model server, as real processes);
two more fail: a missing bucket with the right keys, and a wrong secret key (a second canary).
Then every log the run can reach (the operator's, the process node's, each container's, the
control plane's and its audit log of the operator's requests) plus the objects users read
(status, events, pod status) is searched for the canaries, raw and base64-encoded."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from kube_helpers import apply, condition, get, model_deployment, new_namespace, wait_for
from modelship_localcluster import seed_model
from modelship_localcluster.cluster import LocalCluster
from storage_servers import free_port, serve, tool

PROCESS_LABEL = "node.modelship.dev/runs-processes"
BUCKET = "canary-models"


@dataclass(frozen=True)
class CanaryStore:
    endpoint: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanaryStore]:
    model = seed_model.cached_path()
    if not seed_model.is_built(model):
        pytest.skip(f"the seed model is not built at {model}: run `make up` once")
    root = tmp_path_factory.mktemp("canary-store")
    (root / "data").mkdir()
    port = free_port()
    access_key = f"canaryak{secrets.token_hex(8)}"
    secret_key = f"canary-secret-{secrets.token_hex(16)}"
    command = [str(tool("versitygw")), "--access", access_key, "--secret", secret_key]
    command += ["--port", f"127.0.0.1:{port}", "posix", str(root / "data")]
    with serve(command, port, root / "versitygw.log"):
        canary = CanaryStore(f"http://127.0.0.1:{port}", access_key, secret_key)
        client = boto3.client(
            "s3",
            endpoint_url=canary.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=BUCKET)
        for path in model.rglob("*"):
            if path.is_file():
                key = f"half-plus-two/1/{path.relative_to(model).as_posix()}"
                client.upload_file(str(path), BUCKET, key)
        yield canary


def _secret(cluster: LocalCluster, ns: str, name: str, store: CanaryStore, secret: str) -> None:
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        name,
        "-n",
        ns,
        f"--from-literal=AWS_ACCESS_KEY_ID={store.access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={secret}",
        f"--from-literal=AWS_ENDPOINT_URL={store.endpoint}",
        "--from-literal=AWS_REGION=us-east-1",
    )


def _on_process_node(name: str, uri: str, secret: str) -> dict[str, Any]:
    return model_deployment(
        name,
        storageUri=uri,
        storageSecretName=secret,
        modelName="half_plus_two",
        nodeSelector={PROCESS_LABEL: "true"},
        tolerations=[{"key": PROCESS_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
    )


def _stalled(cluster: LocalCluster, ns: str, name: str) -> dict[str, str]:
    def check() -> dict[str, str] | None:
        cond = condition(get(cluster, ns, "modeldeployment", name), "Stalled")
        return cond if cond.get("status") == "True" else None

    return wait_for(f"{name} Stalled=True", check, timeout=180)


def _forms(value: str) -> list[str]:
    """The value as it would leak: raw, or base64 as in a Secret's data."""
    return [value, base64.b64encode(value.encode()).decode()]


def _leaks(texts: dict[str, str], canaries: list[str]) -> list[str]:
    return [
        f"{where}: {form[:12]}…"
        for where, text in texts.items()
        for canary in canaries
        for form in _forms(canary)
        if form in text
    ]


def test_no_log_carries_a_storage_credential(operator: LocalCluster, store: CanaryStore) -> None:
    ns = new_namespace(operator, "canary")
    wrong_secret = f"canary-wrong-{secrets.token_hex(16)}"
    _secret(operator, ns, "canary-store", store, store.secret_key)
    _secret(operator, ns, "canary-wrong", store, wrong_secret)

    apply(operator, ns, _on_process_node("good", f"s3://{BUCKET}/half-plus-two", "canary-store"))
    apply(operator, ns, _on_process_node("nobucket", "s3://canary-missing/m", "canary-store"))
    apply(operator, ns, _on_process_node("denied", f"s3://{BUCKET}/half-plus-two", "canary-wrong"))

    def served() -> dict[str, Any] | None:
        md = get(operator, ns, "modeldeployment", "good")
        ready = condition(md, "Ready").get("status") == "True"
        return md if ready and md["status"].get("modelVersion") else None

    md = wait_for("good to serve with the canary credentials", served, timeout=240)
    assert md["status"]["modelVersion"] == "1"
    nobucket = _stalled(operator, ns, "nobucket")
    assert nobucket["reason"] == "ModelFetchFailed"
    denied = _stalled(operator, ns, "denied")
    assert denied["reason"] == "ModelFetchFailed"

    # Every log file of the cluster: the operator's, the process node's, each container's
    # (init containers included), the control plane's, the audit log of the operator's requests.
    logs = {
        str(path.relative_to(operator.logs)): path.read_text(errors="replace")
        for path in sorted(operator.logs.rglob("*"))
        if path.is_file()
    }
    container_logs = [name for name in logs if name.startswith(f"pods/{ns}_")]
    assert any(name.endswith("_storage-initializer.log") for name in container_logs), logs.keys()
    assert any(name.endswith("_model-server.log") for name in container_logs), logs.keys()
    assert "operator.log" in logs
    # The failed fetches ran, and said why.
    fetch_logs = {
        md: "".join(
            text
            for name, text in logs.items()
            if name.startswith(f"pods/{ns}_{md}-") and name.endswith("_storage-initializer.log")
        )
        for md in ("nobucket", "denied")
    }
    assert "canary-missing" in fetch_logs["nobucket"], fetch_logs
    assert fetch_logs["denied"], fetch_logs
    # `kubectl logs`, where the node serves it, and what users read from the API.
    for pod in get(operator, ns, "pods")["items"]:
        name = pod["metadata"]["name"]
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            out = operator.kubectl("logs", name, "-c", container["name"], "-n", ns, check=False)
            logs[f"kubectl logs {name} -c {container['name']}"] = out.stdout
    for kind in ("modeldeployments", "pods", "events", "deployments", "replicasets"):
        logs[f"kubectl get {kind}"] = json.dumps(get(operator, ns, kind))

    # The search finds a canary where there is one (the Secret itself), so silence means absence.
    secret_json = json.dumps(get(operator, ns, "secret", "canary-store"))
    assert _leaks({"secret": secret_json}, [store.secret_key])

    canaries = [store.secret_key, wrong_secret]
    assert _leaks(logs, canaries) == []
