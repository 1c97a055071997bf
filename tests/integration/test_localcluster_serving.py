"""The serving side of the local cluster: Prometheus discovers pods through the apiserver as its
own identity, the model store serves the seeded model to `modelship fetch` and the model server,
and a component stops and starts again on the same port."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import new_namespace, restricted, wait_for
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.components.process import free_port, port_open
from storage_helpers import modelship_fetch


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _prometheus_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _secret_env(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    secret = json.loads(
        cluster.kubectl("get", "secret", "local-model-store", "-n", namespace, "-o", "json").stdout
    )
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _sd_events(prometheus_url: str, role: str) -> float:
    """Objects of one role Prometheus' Kubernetes discovery has seen added so far."""
    with urllib.request.urlopen(f"{prometheus_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^prometheus_sd_kubernetes_events_total\{{event="add",role="{role}"\}} (\S+)$'
    values = re.findall(pattern, text, re.M)
    assert values, "Prometheus reports no Kubernetes discovery metrics"
    return float(values[0])


def test_state_records_every_serving_component(cluster: LocalCluster) -> None:
    state = json.loads((cluster.root / "state.json").read_text())
    for name in ("prometheus", "modelstore"):
        assert name in state["ports"]
        assert name in state["pids"]
    assert cluster.prometheus_url == f"http://127.0.0.1:{state['ports']['prometheus']}"


def test_prometheus_discovers_pods_with_node_metadata_and_keeps_only_process_pods(
    cluster: LocalCluster,
) -> None:
    assert _prometheus_ready(cluster.prometheus_url)
    namespace = new_namespace(cluster, "prom-sd")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "fake-server",
            "labels": {"modelship.dev/modeldeployment": "fake"},
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "8501",
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "containers": [{"name": "server", "image": "example.invalid/server:1"}],
        },
    }
    restricted(pod["spec"])
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/fake-server", "-n", namespace)

    def dropped() -> dict[str, str] | None:
        targets = _get_json(f"{cluster.prometheus_url}/api/v1/targets?state=dropped")
        for target in targets["data"]["droppedTargets"]:
            labels: dict[str, str] = target["discoveredLabels"]
            if labels.get("__meta_kubernetes_namespace") == namespace:
                return labels
        return None

    # A kwok pod has an address nothing listens on: discovered, then dropped.
    labels = wait_for("Prometheus to discover the kwok pod", dropped, timeout=60)
    assert labels["job"] == "model-servers"
    assert labels["__meta_kubernetes_pod_phase"] == "Running"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    # attach_metadata: the node's labels, which is how process pods are told apart.
    assert labels["__meta_kubernetes_node_label_type"] == "kwok"
    active = _get_json(f"{cluster.prometheus_url}/api/v1/targets?state=active")
    assert not [
        t for t in active["data"]["activeTargets"] if t["labels"].get("namespace") == namespace
    ]
    # Its identity may list and watch what pod discovery needs: no refusals in its log.
    assert _sd_events(cluster.prometheus_url, "pod") > 0
    log = (cluster.logs / "prometheus.log").read_text()
    assert "forbidden" not in log.lower(), log[-2000:]
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_model_store_serves_the_seed_model_to_fetch_and_the_model_server(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    namespace = new_namespace(cluster, "store")
    cluster.model_store_secret(namespace)
    env = _secret_env(cluster, namespace)
    assert env == _secret_env(cluster, "default")
    assert env["AWS_ENDPOINT_URL"] == cluster.model_store_url

    dest = tmp_path / "models"
    run = modelship_fetch("s3://models/half-plus-two", dest, env)
    assert run.code == 0, run.stderr + run.termination_log
    assert (dest / "1" / "saved_model.pb").is_file()
    assert (dest / "1" / "variables" / "variables.index").is_file()

    wrong = modelship_fetch(
        "s3://models/half-plus-two", tmp_path / "denied", {**env, "AWS_SECRET_ACCESS_KEY": "x"}
    )
    assert wrong.code != 0

    rest = free_port()
    server_cmd = [str(Path(sys.executable).parent / "modelship-server")]
    server_cmd += ["--model_name=half_plus_two", f"--model_base_path={dest}"]
    server_cmd += [f"--rest_api_port={rest}", f"--port={free_port()}"]
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(server_cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{rest}/v1/models/half_plus_two:predict"
        body = json.dumps({"instances": [1.0, 2.0, 5.0]}).encode()

        def predict() -> Any:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url, data=body, method="POST"), timeout=5
                ) as response:
                    return json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):
                return None

        reply = wait_for("the model server to answer", predict, timeout=120)
        assert reply == {"predictions": [2.5, 3.0, 4.5]}
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.timeout(180)
def test_prometheus_stops_and_starts_again_on_the_same_port(cluster: LocalCluster) -> None:
    url = cluster.prometheus_url
    port = cluster.ports["prometheus"]
    old_pid = cluster.pids["prometheus"]
    cluster.stop_component("prometheus")
    assert "prometheus" not in cluster.pids
    assert not port_open(port)
    assert not _prometheus_ready(url)
    cluster.start_component("prometheus")
    assert cluster.prometheus_url == url
    assert cluster.pids["prometheus"] != old_pid
    assert _prometheus_ready(url)
    state = json.loads((cluster.root / "state.json").read_text())
    assert state["pids"]["prometheus"] == cluster.pids["prometheus"]
