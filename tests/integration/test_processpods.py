"""The process-pods component against the real control plane: pods bound to its node run as
real processes, and their status says what happened, as a kubelet's would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import new_namespace, restricted, wait_for
from modelship_localcluster.cluster import LocalCluster
from modelship_operator.controller.status import pod_problem
from process_node import PROCESS_LABEL, ProcessNodeAgent, python_program, register_node, running

HERE = Path(__file__).resolve().parent
SERVER_IMAGE = "ghcr.io/modelship/modelship:dev"
FAKE_IMAGE = "example.test/fakeapp:1"


@pytest.fixture(scope="module")
def node(cluster: LocalCluster) -> Iterator[str]:
    name = register_node(cluster, "process-test")
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def processpods(
    cluster: LocalCluster, node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessNodeAgent]:
    root = tmp_path_factory.mktemp("processpods")
    # The test image's program: a wrapper named like a command a container may run.
    fakeapp = python_program(root / "fakeapp", HERE / "processpods_fakeapp.py")
    agent = ProcessNodeAgent(cluster, node, root, {"example.test/fakeapp": fakeapp}, backoff_cap=4)
    with running(agent):
        yield agent


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = new_namespace(cluster, "pp")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---- helpers ---------------------------------------------------------------------------------


def create_pod(cluster: LocalCluster, namespace: str, node: str | None, pod: dict[str, Any]) -> str:
    spec = pod.setdefault("spec", {})
    if node is not None:
        spec["nodeName"] = node
    spec.setdefault("terminationGracePeriodSeconds", 5)
    restricted(spec)
    body = {"apiVersion": "v1", "kind": "Pod", **pod}
    cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
    return str(pod["metadata"]["name"])


def read_pod(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        pod: dict[str, Any] = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise
    return pod


def pod_condition(pod: dict[str, Any] | None, kind: str) -> str:
    for cond in (pod or {}).get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return str(cond["status"])
    return ""


def container(pod: dict[str, Any] | None, name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod or {}).get("status", {}).get(key, []):
        if status["name"] == name:
            return dict(status)
    return {}


def pid_of(status: dict[str, Any]) -> int:
    return int(status["containerID"].removeprefix("process://"))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def fake(name: str, *args: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": FAKE_IMAGE,
        "args": list(args),
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        **extra,
    }


def wait_gone(cluster: LocalCluster, namespace: str, name: str, timeout: float = 60) -> None:
    wait_for(
        f"pod {name} to be deleted", lambda: read_pod(cluster, namespace, name) is None, timeout
    )


# ---- tests -----------------------------------------------------------------------------------


def test_node_is_ready_and_its_lease_renewed(
    cluster: LocalCluster, node: str, processpods: ProcessNodeAgent
) -> None:
    def ready() -> dict[str, Any] | None:
        obj = cluster.request("GET", f"/api/v1/nodes/{node}")
        return obj if pod_condition(obj, "Ready") == "True" else None

    obj = wait_for("the process node to be Ready", ready, timeout=60)
    assert {"type": "InternalIP", "address": "127.0.0.1"} in obj["status"]["addresses"]
    # The capacity the node was created with is kept.
    assert obj["status"]["capacity"]["pods"] == "110"
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
    first = wait_for("the node lease", lambda: cluster.request("GET", lease_path))
    assert first["spec"]["holderIdentity"] == node
    assert first["spec"]["leaseDurationSeconds"] == 40
    renewed = wait_for(
        "the lease to be renewed",
        lambda: (
            (lease := cluster.request("GET", lease_path))["spec"]["renewTime"]
            != first["spec"]["renewTime"]
            and lease
        ),
        timeout=40,
    )
    assert renewed["spec"]["holderIdentity"] == node


def test_model_server_pod_with_init_container_serves_predictions(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    # The model comes from the local model store as a ModelDeployment's pod fetches it: a
    # hostPath volume would be refused by the namespace's restricted Pod Security level.
    cluster.model_store_secret(namespace)
    # Placed by the real scheduler through the node's label and taint.
    create_pod(
        cluster,
        namespace,
        None,
        {
            "metadata": {"name": "hp2"},
            "spec": {
                # The hostname too: the cluster's own process node carries the same label.
                "nodeSelector": {
                    PROCESS_LABEL: "true",
                    "kubernetes.io/hostname": processpods.node,
                },
                "tolerations": [
                    {"key": PROCESS_LABEL, "operator": "Exists", "effect": "NoSchedule"}
                ],
                "initContainers": [
                    {
                        "name": "copy",
                        "image": SERVER_IMAGE,
                        "command": [
                            "modelship",
                            "fetch",
                            "--uri=s3://models/half-plus-two",
                            "--dest=/mnt/models",
                        ],
                        "envFrom": [{"secretRef": {"name": "local-model-store"}}],
                        "volumeMounts": [
                            {"name": "models", "mountPath": "/mnt/models"},
                            {"name": "scratch", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "containers": [
                    {
                        "name": "model-server",
                        "image": SERVER_IMAGE,
                        "args": ["--model_name=half_plus_two", "--model_base_path=/mnt/models"],
                        "ports": [{"name": "http", "containerPort": 8501}],
                        "readinessProbe": {
                            "httpGet": {"path": "/v2/health/ready", "port": "http"},
                            "periodSeconds": 1,
                        },
                        "volumeMounts": [
                            {"name": "models", "mountPath": "/mnt/models", "readOnly": True},
                            {"name": "scratch", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "models", "emptyDir": {}},
                    {"name": "scratch", "emptyDir": {}},
                ],
            },
        },
    )
    pod = wait_for(
        "the model server pod to be Ready",
        lambda: (
            (p := read_pod(cluster, namespace, "hp2")) and pod_condition(p, "Ready") == "True" and p
        ),
        timeout=180,
    )
    assert pod["spec"]["nodeName"] == processpods.node
    assert pod["status"]["phase"] == "Running"
    copy = container(pod, "copy", init=True)
    assert copy["state"]["terminated"]["exitCode"] == 0
    assert copy["state"]["terminated"]["reason"] == "Completed"
    server = container(pod, "model-server")
    assert server["ready"] is True
    assert server["started"] is True
    assert "running" in server["state"]
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.77.")
    assert pod["status"]["podIPs"] == [{"ip": ip}]
    request = urllib.request.Request(
        f"http://{ip}:8501/v1/models/half_plus_two:predict",
        data=json.dumps({"instances": [1.0, 2.0, 5.0]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read()) == {"predictions": [2.5, 3.0, 4.5]}
    log = processpods.logs / f"{namespace}_hp2_copy.log"
    assert "fetched" in log.read_text()
    cluster.kubectl("delete", "pod", "hp2", "-n", namespace, "--wait=false")
    wait_gone(cluster, namespace, "hp2")


def test_crashing_container_backs_off_and_restarts(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {"metadata": {"name": "crash"}, "spec": {"containers": [fake("app", "--exit=3")]}},
    )

    def backing_off() -> dict[str, Any] | None:
        status = container(read_pod(cluster, namespace, "crash"), "app")
        waiting = status.get("state", {}).get("waiting", {})
        return (
            status
            if status.get("restartCount", 0) >= 2 and waiting.get("reason") == "CrashLoopBackOff"
            else None
        )

    status = wait_for("restarts in CrashLoopBackOff", backing_off, timeout=60)
    last = status["lastState"]["terminated"]
    assert last["exitCode"] == 3
    assert last["reason"] == "Error"
    pod = read_pod(cluster, namespace, "crash")
    assert pod is not None
    assert pod["status"]["phase"] == "Running"
    assert pod_condition(pod, "Ready") == "False"
    # Each run appended to the same log file.
    log = (processpods.logs / f"{namespace}_crash_app.log").read_text()
    assert log.count("exiting with 3") >= 3


def test_failed_init_container_explains_itself_to_the_operator(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "nofetch"},
            "spec": {
                "initContainers": [
                    {
                        "name": "storage-initializer",
                        "image": SERVER_IMAGE,
                        "command": [
                            "modelship",
                            "fetch",
                            "--uri=file:///no/such/model",
                            "--dest=/mnt/models",
                        ],
                        "volumeMounts": [{"name": "model", "mountPath": "/mnt/models"}],
                    }
                ],
                "containers": [{"name": "model-server", "image": SERVER_IMAGE}],
                "volumes": [{"name": "model", "emptyDir": {}}],
            },
        },
    )

    def retried() -> dict[str, Any] | None:
        pod = read_pod(cluster, namespace, "nofetch")
        init = container(pod, "storage-initializer", init=True)
        waiting = init.get("state", {}).get("waiting", {})
        return (
            pod
            if init.get("restartCount", 0) >= 1 and waiting.get("reason") == "CrashLoopBackOff"
            else None
        )

    pod = wait_for("the init container to be retried", retried, timeout=60)
    init = container(pod, "storage-initializer", init=True)
    terminated = init["lastState"]["terminated"]
    assert terminated["exitCode"] == 1
    assert "/no/such/model" in terminated["message"]
    assert pod["status"]["phase"] == "Pending"
    assert pod_condition(pod, "Initialized") == "False"
    assert container(pod, "model-server")["state"]["waiting"]["reason"] == "PodInitializing"
    problem = pod_problem(pod)
    assert problem is not None
    assert problem.reason == "ModelFetchFailed"
    assert "/no/such/model" in problem.message


def test_failing_liveness_probe_restarts_the_container(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "unhealthy"},
            "spec": {
                "containers": [
                    fake(
                        "app",
                        "--healthy-file=/mnt/state/healthy",
                        "--healthy-for=3",
                        "--serve=8080",
                        ports=[{"name": "web", "containerPort": 8080}],
                        readinessProbe={"tcpSocket": {"port": "web"}, "periodSeconds": 1},
                        livenessProbe={
                            "exec": {"command": ["fakeapp", "--check=/mnt/state/healthy"]},
                            "periodSeconds": 1,
                            "failureThreshold": 2,
                        },
                        volumeMounts=[{"name": "state", "mountPath": "/mnt/state"}],
                    )
                ],
                "volumes": [{"name": "state", "emptyDir": {}}],
            },
        },
    )
    first = wait_for(
        "the app to be ready",
        lambda: (
            (p := read_pod(cluster, namespace, "unhealthy"))
            and pod_condition(p, "Ready") == "True"
            and p
        ),
        timeout=60,
    )
    first_pid = pid_of(container(first, "app"))

    def restarted() -> dict[str, Any] | None:
        status = container(read_pod(cluster, namespace, "unhealthy"), "app")
        return status if status.get("restartCount", 0) >= 1 else None

    status = wait_for("a restart after the liveness probe failed", restarted, timeout=60)
    # Killed with SIGTERM (the app then exits 0 from its handler).
    assert status["lastState"]["terminated"]["containerID"] == f"process://{first_pid}"
    assert not alive(first_pid)
    assert "liveness probe failed" in processpods.log.read_text()


def test_deletion_runs_prestop_then_sigterm_and_removes_the_pod(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    volume_mount = [{"name": "out", "mountPath": "/mnt/out"}]
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "graceful"},
            "spec": {
                "containers": [
                    fake(
                        "hooked",
                        "--on-term=/mnt/out/hooked-term",
                        "--after=/mnt/out/prestop",
                        lifecycle={
                            "preStop": {
                                "exec": {"command": ["fakeapp", "--touch=/mnt/out/prestop"]}
                            }
                        },
                        volumeMounts=volume_mount,
                    ),
                    fake(
                        "sleepy",
                        "--on-term=/mnt/out/sleepy-term",
                        lifecycle={"preStop": {"sleep": {"seconds": 2}}},
                        volumeMounts=volume_mount,
                    ),
                ],
                # emptyDir (restricted refuses hostPath): the pod's containers share it, and
                # what each saw at SIGTERM is read from its log, which outlives the pod.
                "volumes": [{"name": "out", "emptyDir": {}}],
            },
        },
    )
    pod = wait_for(
        "both containers running",
        lambda: (
            (p := read_pod(cluster, namespace, "graceful"))
            and pod_condition(p, "Ready") == "True"
            and p
        ),
        timeout=60,
    )
    pids = [pid_of(container(pod, name)) for name in ("hooked", "sleepy")]
    cluster.kubectl("delete", "pod", "graceful", "-n", namespace, "--wait=false")
    wait_gone(cluster, namespace, "graceful")
    logs = processpods.logs
    assert "got SIGTERM (after)" in (logs / f"{namespace}_graceful_hooked.log").read_text()
    assert "got SIGTERM (before)" in (logs / f"{namespace}_graceful_sleepy.log").read_text()
    assert not any(alive(pid) for pid in pids)
    log = processpods.log.read_text()
    assert f"{namespace}/graceful: preStop of sleepy done" in log


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "stubborn"},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [fake("app", "--ignore-term")],
            },
        },
    )
    pod = wait_for(
        "the app running",
        lambda: (
            (p := read_pod(cluster, namespace, "stubborn"))
            and pod_condition(p, "Ready") == "True"
            and p
        ),
        timeout=60,
    )
    pid = pid_of(container(pod, "app"))
    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=false")
    wait_gone(cluster, namespace, "stubborn")
    assert not alive(pid)
    assert "ignoring SIGTERM" in (processpods.logs / f"{namespace}_stubborn_app.log").read_text()
    assert f"{namespace}/stubborn: grace period over; SIGKILL app" in processpods.log.read_text()


def test_image_without_a_local_program_reports_err_image_pull(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "foreign"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
    )

    def waiting() -> dict[str, Any] | None:
        status = container(read_pod(cluster, namespace, "foreign"), "web")
        return status.get("state", {}).get("waiting")

    state = wait_for("ErrImagePull", waiting, timeout=30)
    assert state["reason"] == "ErrImagePull"
    assert state["message"] == (
        f"image nginx:1.27 has no local program on node {processpods.node} "
        "(this node runs: example.test/fakeapp, ghcr.io/modelship/modelship)"
    )
    pod = read_pod(cluster, namespace, "foreign")
    assert pod is not None
    assert pod["status"]["phase"] == "Pending"


def test_volumes_environment_and_a_completed_pod(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    cluster.kubectl(
        "create",
        "configmap",
        "settings",
        "-n",
        namespace,
        "--from-literal=mode=fast",
        "--from-literal=size=3",
    )
    cluster.kubectl(
        "create", "secret", "generic", "creds", "-n", namespace, "--from-literal=TOKEN=s3cr3t"
    )
    app = fake(
        "app",
        "--show-env",
        "POD_IP",
        "MY_NAME",
        "MY_NODE",
        "MODE",
        "TOKEN",
        "CFG_size",
        "TMPDIR",
        "GREETING",
        "--show-file=/etc/settings/mode",
        "--exit=0",
        envFrom=[
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
        ],
        volumeMounts=[
            {"name": "settings", "mountPath": "/etc/settings"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    app["env"] += [
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "GREETING", "value": "hello $(MY_NAME)"},
    ]
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "once"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [app],
                "volumes": [
                    {"name": "settings", "configMap": {"name": "settings"}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    )
    pod = wait_for(
        "the pod to succeed",
        lambda: (
            (p := read_pod(cluster, namespace, "once"))
            and p["status"].get("phase") == "Succeeded"
            and p
        ),
        timeout=60,
    )
    assert container(pod, "app")["state"]["terminated"]["exitCode"] == 0
    assert pod_condition(pod, "Ready") == "False"
    log = (processpods.logs / f"{namespace}_once_app.log").read_text()
    ip = pod["status"]["podIP"]
    assert f"env POD_IP={ip}\n" in log
    assert "env MY_NAME=once\n" in log
    assert f"env MY_NODE={processpods.node}\n" in log
    assert "env MODE=fast\n" in log
    assert "env TOKEN=s3cr3t\n" in log
    assert "env CFG_size=3\n" in log
    assert "env GREETING=hello once\n" in log
    assert f"/{pod['metadata']['uid']}/volumes/tmp\n" in log
    assert "file /" in log
    assert "/volumes/settings/mode=fast\n" in log


def test_persistent_volume_claim_cannot_be_served(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {
            "metadata": {"name": "claims"},
            "spec": {
                "containers": [fake("app", volumeMounts=[{"name": "data", "mountPath": "/data"}])],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "models"}}],
            },
        },
    )

    def waiting() -> dict[str, Any] | None:
        return (
            container(read_pod(cluster, namespace, "claims"), "app").get("state", {}).get("waiting")
        )

    state = wait_for(
        "CreateContainerConfigError",
        lambda: (w := waiting()) and w["reason"] == "CreateContainerConfigError" and w,
        timeout=30,
    )
    assert "persistentVolumeClaim 'models'" in state["message"]


def test_restarted_component_kills_leftovers_and_brings_pods_back(
    cluster: LocalCluster, namespace: str, processpods: ProcessNodeAgent
) -> None:
    create_pod(
        cluster,
        namespace,
        processpods.node,
        {"metadata": {"name": "survivor"}, "spec": {"containers": [fake("app")]}},
    )
    pod = wait_for(
        "the app running",
        lambda: (
            (p := read_pod(cluster, namespace, "survivor"))
            and pod_condition(p, "Ready") == "True"
            and p
        ),
        timeout=60,
    )
    old_pid = pid_of(container(pod, "app"))
    old_ip = pod["status"]["podIP"]
    processpods.kill()
    # A crash leaves the containers running...
    assert alive(old_pid)
    processpods.start()

    def back() -> dict[str, Any] | None:
        p = read_pod(cluster, namespace, "survivor")
        status = container(p, "app")
        return p if status.get("restartCount") == 1 and status.get("ready") else None

    pod = wait_for("the pod running again", back, timeout=60)
    # ...which the next run kills before starting them again, counted as a restart.
    assert not alive(old_pid)
    status = container(pod, "app")
    assert pid_of(status) != old_pid
    assert (
        status["lastState"]["terminated"]["containerID"] == f"process://{old_pid}"
        or status["lastState"]["terminated"]["exitCode"] == 137
    )
    assert pod["status"]["podIP"] == old_ip
    # A clean stop stops every container and exits 0.
    new_pid = pid_of(status)
    assert processpods.stop() == 0
    assert not alive(new_pid)
