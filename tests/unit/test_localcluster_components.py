"""The pure builders of the local cluster's components: argv, Prometheus' configuration, the
model store's keys and Secret, the shell exports."""

from __future__ import annotations

import base64
import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest
from modelship_localcluster.cli import shell_exports
from modelship_localcluster.cluster import LocalCluster
from modelship_localcluster.components import modelstore, prometheus
from modelship_localcluster.components.apiserver import OPERATOR_USER, audit_policy
from modelship_localcluster.components.processpods import (
    node_cidr,
    pick_process_cidr,
    processpods_command,
)
from modelship_localcluster.components.serviceproxy import serviceproxy_command
from modelship_localcluster.nodes import NodePool
from modelship_localcluster.product import operator_command

PKI = Path("/cluster/pki")


def _job() -> dict[str, Any]:
    config = prometheus.prometheus_config(
        "https://127.0.0.1:6443",
        PKI / "ca.crt",
        PKI / "prometheus.crt",
        PKI / "prometheus.key",
        Path("/cluster/targets.json"),
    )
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "model-servers"]
    return job


def test_prometheus_discovers_pods_through_the_local_apiserver_with_node_metadata() -> None:
    (sd,) = _job()["kubernetes_sd_configs"]
    assert sd["role"] == "pod"
    assert sd["api_server"] == "https://127.0.0.1:6443"
    assert sd["tls_config"] == {
        "ca_file": str(PKI / "ca.crt"),
        "cert_file": str(PKI / "prometheus.crt"),
        "key_file": str(PKI / "prometheus.key"),
    }
    assert sd["attach_metadata"] == {"node": True}


def test_prometheus_keeps_only_annotated_running_pods_on_process_nodes() -> None:
    keeps = {
        rule["source_labels"][0]: rule["regex"]
        for rule in _job()["relabel_configs"]
        if rule.get("action") == "keep"
    }
    assert keeps == {
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_node_label_node_modelship_dev_runs_processes": "true",
    }


def test_prometheus_scrapes_the_annotated_port_and_path_and_labels_targets() -> None:
    rules = {rule.get("target_label"): rule for rule in _job()["relabel_configs"]}
    address = rules["__address__"]
    assert address["source_labels"] == [
        "__meta_kubernetes_pod_ip",
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
    ]
    assert address["replacement"] == "$1:$2"
    assert rules["__metrics_path__"]["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_path"
    ]
    assert rules["namespace"]["source_labels"] == ["__meta_kubernetes_namespace"]
    assert rules["pod"]["source_labels"] == ["__meta_kubernetes_pod_name"]
    assert rules["modeldeployment"]["source_labels"] == [
        "__meta_kubernetes_pod_label_modelship_dev_modeldeployment"
    ]


def test_prometheus_meta_labels_follow_its_sanitizing() -> None:
    assert prometheus.meta_label("pod_label", "app.kubernetes.io/name") == (
        "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    )


def test_prometheus_flags() -> None:
    argv = prometheus.prometheus_command(
        Path("/bin/prom"), Path("/c/prometheus.yml"), Path("/c/prometheus"), 9091
    ).argv
    assert argv == [
        "/bin/prom",
        "--config.file=/c/prometheus.yml",
        "--storage.tsdb.path=/c/prometheus",
        "--web.listen-address=127.0.0.1:9091",
        "--storage.tsdb.retention.time=6h",
        "--web.enable-lifecycle",
    ]


def test_prometheus_binary_is_the_override_then_the_toolchain_build_then_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSHIP_PROMETHEUS_BIN", "/opt/prometheus")
    assert prometheus.binary(tmp_path) == Path("/opt/prometheus")
    monkeypatch.delenv("MODELSHIP_PROMETHEUS_BIN")
    assert prometheus.binary(tmp_path) == Path("/usr/bin/prometheus")
    (tmp_path / "prometheus").write_text("")
    assert prometheus.binary(tmp_path) == tmp_path / "prometheus"


def test_prometheus_may_only_read_pods_nodes_and_namespaces() -> None:
    role, binding = prometheus.prometheus_rbac("someone")
    (rule,) = role["rules"]
    assert sorted(rule["resources"]) == ["namespaces", "nodes", "pods"]
    assert sorted(rule["verbs"]) == ["get", "list", "watch"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == "someone"


def test_operator_targets_follow_its_metrics_port(tmp_path: Path) -> None:
    assert prometheus.operator_targets(None) == []
    prometheus.write_operator_targets(tmp_path, 8123)
    written = (tmp_path / prometheus.OPERATOR_TARGETS_FILE).read_text()
    assert '"127.0.0.1:8123"' in written


def test_model_store_keys_are_made_once_and_kept_private(tmp_path: Path) -> None:
    first = modelstore.load_or_create_credentials(tmp_path)
    again = modelstore.load_or_create_credentials(tmp_path)
    assert first == again
    assert len(first.secret_key) >= 20
    assert oct((tmp_path / modelstore.CREDENTIALS_FILE).stat().st_mode & 0o777) == "0o600"
    (tmp_path / "elsewhere").mkdir()
    other = modelstore.load_or_create_credentials(tmp_path / "elsewhere")
    assert other != first


def test_model_store_keys_stay_off_the_command_line(tmp_path: Path) -> None:
    keys = modelstore.Credentials("access-1", "secret-1")
    command = modelstore.modelstore_command(
        Path("/bin/versitygw"), 7070, tmp_path / "data", keys, {"PATH": "/bin"}
    )
    assert "secret-1" not in " ".join(command.argv)
    assert command.argv[-2:] == ["posix", str(tmp_path / "data")]
    assert "127.0.0.1:7070" in command.argv
    assert command.env is not None
    assert command.env["ROOT_ACCESS_KEY_ID"] == "access-1"
    assert command.env["ROOT_SECRET_ACCESS_KEY"] == "secret-1"
    assert command.env["PATH"] == "/bin"


def test_model_store_secret_holds_what_modelship_fetch_reads() -> None:
    env = modelstore.client_env(7070, modelstore.Credentials("a", "s"))
    secret = modelstore.secret_manifest("team-a", env)
    assert secret["metadata"]["name"] == "local-model-store"
    assert secret["metadata"]["namespace"] == "team-a"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:7070",
        "AWS_REGION": "us-east-1",
    }


def test_seed_objects_sit_under_the_model_version(tmp_path: Path) -> None:
    (tmp_path / "variables").mkdir()
    (tmp_path / "assets").mkdir()  # empty: nothing to upload
    (tmp_path / "saved_model.pb").write_bytes(b"pb")
    (tmp_path / "variables" / "variables.index").write_bytes(b"ix")
    assert sorted(modelstore.seed_objects(tmp_path)) == [
        "half-plus-two/1/saved_model.pb",
        "half-plus-two/1/variables/variables.index",
    ]


def test_process_pod_ranges_are_per_cluster_and_per_node() -> None:
    cluster = pick_process_cidr(random.Random(3))
    network = ipaddress.IPv4Network(cluster)
    assert network.prefixlen == 20
    assert network.subnet_of(ipaddress.IPv4Network("127.77.0.0/16"))
    first, second = node_cidr(cluster, 0), node_cidr(cluster, 1)
    assert first != second
    assert ipaddress.IPv4Network(first).subnet_of(network)
    assert ipaddress.IPv4Network(second).subnet_of(network)


def test_process_kubelet_and_proxy_commands() -> None:
    kubelet = processpods_command(
        "/py",
        Path("/c/pki/processpods.kubeconfig"),
        "process-0",
        Path("/c/pods"),
        Path("/c/l"),
        "127.77.16.0/24",
    )
    assert kubelet.argv == [
        "/py",
        "-m",
        "modelship_localcluster.processpods",
        "--kubeconfig=/c/pki/processpods.kubeconfig",
        "--node=process-0",
        "--workdir=/c/pods",
        "--logs=/c/l",
        "--pod-cidr=127.77.16.0/24",
    ]
    proxy = serviceproxy_command("/py", Path("/c/pki/serviceproxy.kubeconfig"), 3128)
    assert proxy.argv[-2:] == [
        "--kubeconfig=/c/pki/serviceproxy.kubeconfig",
        "--listen=127.0.0.1:3128",
    ]


def test_operator_asks_the_cluster_prometheus_and_extra_args_come_last() -> None:
    command = operator_command(
        "/py", Path("/c/op.kubeconfig"), 1, 2, "http://127.0.0.1:9090", ("--x=1",), {"A": "b"}
    )
    assert "--prometheus-url=http://127.0.0.1:9090" in command.argv
    assert command.argv[-1] == "--x=1"
    assert command.env == {"A": "b", "KUBECONFIG": "/c/op.kubeconfig"}
    without = operator_command("/py", Path("/k"), 1, 2, None, (), {})
    assert not any(arg.startswith("--prometheus-url") for arg in without.argv)


def test_audit_policy_records_only_the_operator() -> None:
    policy = audit_policy(OPERATOR_USER)
    assert f'users: ["{OPERATOR_USER}"]' in policy
    assert policy.rstrip().endswith("- level: None")


def test_shell_exports_point_at_the_cluster_and_its_urls(tmp_path: Path) -> None:
    local = LocalCluster(
        root=tmp_path,
        bin_dir=Path("/bin-dir"),
        ports={"apiserver": 1, "serviceproxy": 3128, "prometheus": 9090},
    )
    assert shell_exports(local) == [
        f"export KUBECONFIG={tmp_path / 'kubeconfig'}",
        "export PATH=/bin-dir:$PATH",
        "export MODELSHIP_PROXY=http://127.0.0.1:3128",
        "export MODELSHIP_PROMETHEUS=http://127.0.0.1:9090",
    ]


def test_control_plane_only_cluster_runs_no_serving_components(tmp_path: Path) -> None:
    local = LocalCluster(root=tmp_path, serving=False)
    assert list(local.components()) == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]


def test_every_process_node_gets_its_kubelet_after_the_control_plane(tmp_path: Path) -> None:
    pools = [NodePool("cpu", 1), NodePool("proc", 2, runs_processes=True)]
    local = LocalCluster(root=tmp_path, pools=pools)
    assert list(local.components())[5:] == [
        "processpods-proc-0",
        "processpods-proc-1",
        "serviceproxy",
        "prometheus",
        "modelstore",
    ]
    assert [n["metadata"]["name"] for n in local._node_objects()] == ["cpu-0", "proc-0", "proc-1"]


def test_process_nodes_without_a_kubelet_are_not_created(tmp_path: Path) -> None:
    pools = [NodePool("cpu", 1), NodePool("proc", 1, runs_processes=True)]
    local = LocalCluster(root=tmp_path, pools=pools, serving=False)
    assert [n["metadata"]["name"] for n in local._node_objects()] == ["cpu-0"]
    assert "serviceproxy" not in local.components()
