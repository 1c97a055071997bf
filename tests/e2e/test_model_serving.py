"""Train of custody from S3 to a prediction: the operator builds the pod, `modelship fetch`
pulls the SavedModel from a real S3 server, the model server serves it at the pod's address,
the operator reads the version it serves, and a client gets TF Serving's reference answer.
The external kubelet (external_kubelet.py) runs the pod's containers as processes."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from external_kubelet import ExternalKubelet
from kube_helpers import apply, condition, get, model_deployment, new_namespace, wait_for
from modelship_localcluster.cluster import LocalCluster
from storage_helpers import ACCESS_KEY, REAL_MODEL, SECRET_KEY, S3Server

IMAGE = "kwok.external/model-server:dev"


@pytest.fixture
def kubelet(operator: LocalCluster, tmp_path: Path) -> Iterator[ExternalKubelet]:
    runner = ExternalKubelet(operator, tmp_path)
    yield runner
    runner.stop()


def _secret(cluster: LocalCluster, namespace: str, s3: S3Server) -> None:
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "s3-credentials",
        "-n",
        namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={ACCESS_KEY}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={SECRET_KEY}",
        f"--from-literal=AWS_ENDPOINT_URL={s3.endpoint}",
        "--from-literal=AWS_REGION=us-east-1",
    )


def _upload_reference_model(s3: S3Server, bucket: str) -> None:
    if not REAL_MODEL.exists():
        pytest.skip(f"TF Serving's reference models are not at {REAL_MODEL}")
    client = s3.admin()
    client.create_bucket(Bucket=bucket)
    for path in REAL_MODEL.rglob("*"):
        if path.is_file():
            key = f"half_plus_two/{path.relative_to(REAL_MODEL).as_posix()}"
            client.upload_file(str(path), bucket, key)


def test_model_from_s3_is_served_and_its_version_reported(
    operator: LocalCluster, s3_server: S3Server, kubelet: ExternalKubelet
) -> None:
    ns = new_namespace(operator, "e2e-serve")
    _upload_reference_model(s3_server, "e2e-models")
    _secret(operator, ns, s3_server)
    apply(
        operator,
        ns,
        model_deployment(
            "hp2",
            storageUri="s3://e2e-models/half_plus_two",
            storageSecretName="s3-credentials",
            modelName="half_plus_two",
            server={"image": IMAGE},
            # Through the ConfigMap the operator writes and the flags it passes the server.
            batching={"enabled": True, "maxBatchSize": 8, "allowedBatchSizes": [4, 8]},
        ),
    )

    def served() -> dict[str, object] | None:
        kubelet.sync(ns)
        md = get(operator, ns, "modeldeployment", "hp2")
        ready = condition(md, "Ready").get("status") == "True"
        return md if ready and md["status"].get("modelVersion") else None

    md = wait_for("Ready with the served version", served, timeout=240)
    # The latest-version policy serves the newest of the two versions in the bucket.
    assert md["status"]["modelVersion"] == "124"

    (pod,) = get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=hp2")["items"]
    url = f"http://{pod['status']['podIP']}:8501/v1/models/half_plus_two:predict"
    request = urllib.request.Request(
        url,
        data=json.dumps({"instances": [1.0, 2.0, 5.0]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read()) == {"predictions": [2.5, 3.0, 4.5]}
    # Three rows ran as a batch padded to 4, the smallest allowed size the spec asked for.
    metrics_url = f"http://{pod['status']['podIP']}:8501/metrics"
    with urllib.request.urlopen(metrics_url, timeout=30) as response:
        metrics = response.read().decode()
    padding = [
        line
        for line in metrics.splitlines()
        if line.startswith(":tensorflow:serving:batching_session:padding_size_sum")
    ]
    assert padding, metrics[:2000]
    assert float(padding[0].rsplit(" ", 1)[1]) == 1.0


def test_unreadable_storage_uri_stalls_with_the_fetch_error(
    operator: LocalCluster, s3_server: S3Server, kubelet: ExternalKubelet
) -> None:
    ns = new_namespace(operator, "e2e-nobucket")
    _secret(operator, ns, s3_server)
    apply(
        operator,
        ns,
        model_deployment(
            "lost",
            storageUri="s3://no-such-bucket/m",
            storageSecretName="s3-credentials",
            server={"image": IMAGE},
        ),
    )

    def stalled() -> dict[str, str] | None:
        kubelet.sync(ns)
        cond = condition(get(operator, ns, "modeldeployment", "lost"), "Stalled")
        return cond if cond.get("status") == "True" else None

    cond = wait_for("Stalled=True", stalled, timeout=120)
    assert cond["reason"] == "ModelFetchFailed"
    assert "cannot read s3://no-such-bucket/m" in cond["message"]
    assert "NoSuchBucket" in cond["message"]
    assert SECRET_KEY not in cond["message"]
    md = get(operator, ns, "modeldeployment", "lost")
    assert condition(md, "Ready")["reason"] == "ModelFetchFailed"
