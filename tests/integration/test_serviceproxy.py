"""The service proxy on the real control plane: a namespace, a Service and pods bound to a node
of the test's own (no kwok annotation, so only this test writes those pods' status), small real
HTTP servers at the pods' addresses, and the proxy process watching it all. Clients are real:
curl through `-x`, and grpcio through `grpc.http_proxy`."""

from __future__ import annotations

import datetime
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from kube_helpers import namespace_object, restricted
from modelship_localcluster.cluster import LocalCluster
from modelship_operator.resources.names import GRPC_PORT, REST_PORT, ModelDeploymentRef
from modelship_operator.resources.service import build_service

ROOT = Path(__file__).resolve().parents[2]
HALF_PLUS_TWO = ROOT.parent / "shared" / "testdata" / "tf-serving" / "saved_model_half_plus_two_cpu"
WEB_PORT = 8080  # the Service's port; the pods' container port `http` is POD_PORT
POD_PORT = 18080
CONVERGE_SECONDS = 60.0
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

# A pod's server: answers every GET with its pod's name, keep-alive, absolute-form or not.
NAME_SERVER = """
import http.server, sys
ip, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((ip, port), Handler).serve_forever()
"""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(ip: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited with {process.returncode}")
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listening on {ip}:{port} after {timeout}s")


@dataclass
class Curl:
    status: int
    body: str


@dataclass
class World:
    """One namespace, one node with a heartbeat, the proxy, and what the tests start."""

    cluster: LocalCluster
    namespace: str
    node: str
    proxy_url: str
    proxy_log: Path
    # Pod addresses from a block the process-pod kubelet (lowest addresses first) leaves alone.
    octet: int = field(default_factory=lambda: random.randint(200, 250))
    next_host: int = 2
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def address(self) -> str:
        self.next_host += 1
        return f"127.77.{self.octet}.{self.next_host}"

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.cluster.request(method, path, body)

    def pods_path(self, name: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods" + (f"/{name}" if name else "")

    def create_service(self, service: dict[str, Any]) -> dict[str, Any]:
        service["metadata"].pop("ownerReferences", None)
        service["metadata"]["namespace"] = self.namespace
        created: dict[str, Any] = self.api(
            "POST", f"/api/v1/namespaces/{self.namespace}/services", service
        )
        return created

    def create_pod(self, name: str, labels: dict[str, str], ports: dict[str, int], ip: str) -> None:
        """A pod bound to the test's node, then reported Running and Ready at `ip`."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": restricted(
                {
                    "nodeName": self.node,
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "server",
                            "image": "example.invalid/server:1",
                            "ports": [
                                {"name": port_name, "containerPort": number}
                                for port_name, number in ports.items()
                            ],
                        }
                    ],
                }
            ),
        }
        deadline = time.monotonic() + CONVERGE_SECONDS
        while True:  # a new namespace refuses pods until its default ServiceAccount exists
            try:
                self.api("POST", self.pods_path(), pod)
                break
            except urllib.error.HTTPError as err:
                if err.code != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.set_pod_status(name, ready=True, ip=ip)

    def set_pod_status(self, name: str, *, ready: bool, ip: str | None = None) -> None:
        for attempt in range(10):  # another writer may land between our read and write
            try:
                self._put_pod_status(name, ready=ready, ip=ip)
                return
            except urllib.error.HTTPError as err:
                if err.code != 409 or attempt == 9:
                    raise
                time.sleep(0.2)

    def _put_pod_status(self, name: str, *, ready: bool, ip: str | None) -> None:
        pod = self.api("GET", self.pods_path(name))
        ip = ip or pod["status"]["podIP"]
        flag = "True" if ready else "False"
        pod["status"] = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": pod["metadata"]["creationTimestamp"],
            "conditions": [
                {"type": kind, "status": flag, "lastTransitionTime": now()[:19] + "Z"}
                for kind in ("Ready", "ContainersReady")
            ],
        }
        self.api("PUT", self.pods_path(name) + "/status", pod)

    def delete_pod(self, name: str, grace_seconds: int | None = None) -> None:
        options = {} if grace_seconds is None else {"gracePeriodSeconds": grace_seconds}
        self.api("DELETE", self.pods_path(name), options)

    def start(self, argv: list[str], ip: str, port: int, timeout: float = 30) -> None:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        wait_listening(ip, port, process, timeout)

    def name_server(self, name: str, ip: str) -> None:
        self.start([sys.executable, "-c", NAME_SERVER, ip, str(POD_PORT), name], ip, POD_PORT)

    def curl(self, url: str, *extra: str) -> Curl:
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_ENV}
        command = ["curl", "-sS", "--max-time", "30", "-x", self.proxy_url]
        command += ["-w", "\n%{http_code}", *extra, url]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        body, _, code = done.stdout.rpartition("\n")
        assert code.isdigit(), f"curl failed: {done.stderr}"
        return Curl(int(code), body)

    def converge(self, what: str, check: Callable[[], bool]) -> None:
        """Watches take a moment to reach the proxy: wait for the state, never time it."""
        deadline = time.monotonic() + CONVERGE_SECONDS
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        tail = self.proxy_log.read_text(errors="replace").splitlines()[-30:]
        pytest.fail(f"the proxy never showed {what}; its log ends:\n" + "\n".join(tail))


class NodeHeartbeat:
    """Renews the node's Lease as a kubelet would, so the node lifecycle controller keeps it
    Ready and leaves its pods' readiness to the test."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._world.api(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {
                "metadata": {"name": self._world.node},
                "spec": {
                    "holderIdentity": self._world.node,
                    "leaseDurationSeconds": 40,
                    "renewTime": now(),
                },
            },
        )
        self._thread.start()

    def _run(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self._world.node}"
        while not self._stop.wait(5):
            try:
                lease = self._world.api("GET", path)
                lease["spec"]["renewTime"] = now()
                self._world.api("PUT", path, lease)
            except (OSError, urllib.error.HTTPError):
                continue  # the next beat tries again

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def create_node(world: World) -> None:
    world.api(
        "POST",
        "/api/v1/nodes",
        {"metadata": {"name": world.node, "labels": {"kubernetes.io/hostname": world.node}}},
    )
    # The node controllers write to a new node too: read-modify-write until ours lands.
    for attempt in range(10):
        node = world.api("GET", f"/api/v1/nodes/{world.node}")
        node["status"] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "TestKubelet",
                    "lastHeartbeatTime": now()[:19] + "Z",
                    "lastTransitionTime": now()[:19] + "Z",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }
        try:
            world.api("PUT", f"/api/v1/nodes/{world.node}/status", node)
            return
        except urllib.error.HTTPError as err:
            if err.code != 409 or attempt == 9:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def world(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    suffix = f"{random.getrandbits(32):08x}"
    port = free_port()
    log = tmp_path_factory.mktemp("serviceproxy") / "serviceproxy.log"
    world = World(
        cluster,
        namespace=f"proxytest-{suffix}",
        node=f"proxytest-{suffix}",
        proxy_url=f"http://127.0.0.1:{port}",
        proxy_log=log,
    )
    world.api("POST", "/api/v1/namespaces", namespace_object(world.namespace))
    create_node(world)
    heartbeat = NodeHeartbeat(world)
    heartbeat.start()
    with log.open("wb") as sink:
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelship_localcluster.serviceproxy",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--listen=127.0.0.1:{port}",
                "--log-connections",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        # It listens once Services and Pods are listed.
        wait_listening("127.0.0.1", port, proxy, timeout=60)
        yield world
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        for process in world.processes:
            process.terminate()
            process.wait(timeout=30)
        heartbeat.stop()
        pods = world.api("GET", world.pods_path())["items"]
        for pod in pods:  # no kubelet finishes their deletion: force it
            world.delete_pod(pod["metadata"]["name"], grace_seconds=0)
        world.api("DELETE", f"/api/v1/namespaces/{world.namespace}")
        world.api("DELETE", f"/api/v1/nodes/{world.node}")


def name_service(world: World, name: str, app: str) -> dict[str, Any]:
    return world.create_service(
        {
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": app},
                "ports": [{"name": "web", "port": WEB_PORT, "targetPort": "http"}],
            },
        }
    )


@pytest.fixture(scope="module")
def web(world: World) -> dict[str, Any]:
    """Service `web` (port 8080 → container port `http`) over pods web-a and web-b."""
    service = name_service(world, "web", "web")
    for name in ("web-a", "web-b"):
        ip = world.address()
        world.name_server(name, ip)
        world.create_pod(name, {"app": "web"}, {"http": POD_PORT}, ip)
    return service


def answers(world: World, url: str, count: int, *extra: str) -> list[str]:
    """`count` requests, each on a connection of its own (one curl each)."""
    replies = [world.curl(url, *extra) for _ in range(count)]
    assert all(reply.status == 200 for reply in replies), replies
    return [reply.body for reply in replies]


def test_requests_through_curl_reach_both_ready_pods(world: World, web: dict[str, Any]) -> None:
    url = f"http://web.{world.namespace}.svc:{WEB_PORT}/anything"
    world.converge("both pods", lambda: set(answers(world, url, 4)) == {"web-a", "web-b"})
    assert sorted(answers(world, url, 6)) == ["web-a"] * 3 + ["web-b"] * 3
    cluster_ip = web["spec"]["clusterIP"]
    for host in (f"web.{world.namespace}.svc.cluster.local", f"web.{world.namespace}", cluster_ip):
        assert set(answers(world, f"http://{host}:{WEB_PORT}/", 2)) == {"web-a", "web-b"}


def test_connect_tunnels_to_the_pods(world: World, web: dict[str, Any]) -> None:
    url = f"http://web.{world.namespace}.svc:{WEB_PORT}/"
    world.converge("both pods", lambda: len(set(answers(world, url, 2))) == 2)
    tunnelled = answers(world, url, 4, "--proxytunnel")
    assert sorted(tunnelled) == ["web-a", "web-a", "web-b", "web-b"]


def test_a_pod_not_ready_then_terminating_stops_getting_connections(
    world: World, web: dict[str, Any]
) -> None:
    url = f"http://web.{world.namespace}.svc:{WEB_PORT}/"
    world.converge("both pods", lambda: len(set(answers(world, url, 2))) == 2)

    world.set_pod_status("web-b", ready=False)
    world.converge("web-b not ready", lambda: answers(world, url, 2) == ["web-a"] * 2)
    assert answers(world, url, 6) == ["web-a"] * 6

    world.set_pod_status("web-b", ready=True)
    world.converge("web-b ready again", lambda: len(set(answers(world, url, 2))) == 2)

    # No kubelet finishes the deletion: web-b stays, terminating, and its server still answers.
    world.delete_pod("web-b", grace_seconds=300)
    world.converge("web-b terminating", lambda: answers(world, url, 2) == ["web-a"] * 2)
    assert answers(world, url, 6) == ["web-a"] * 6


def test_service_without_ready_endpoints_is_503(world: World) -> None:
    name_service(world, "empty", "nothing-has-this-label")
    url = f"http://empty.{world.namespace}.svc:{WEB_PORT}/"
    world.converge("the new Service", lambda: world.curl(url).status == 503)
    reply = world.curl(url)
    assert reply.body == f"no ready endpoints for service {world.namespace}/empty port {WEB_PORT}\n"


def test_unknown_hosts_are_502(world: World) -> None:
    reply = world.curl(f"http://missing.{world.namespace}.svc:{WEB_PORT}/")
    assert (reply.status, reply.body) == (502, f"no service {world.namespace}/missing\n")
    reply = world.curl("http://example.invalid.host.name/")
    assert (reply.status, reply.body) == (502, "not a service host: example.invalid.host.name\n")


def test_model_server_rest_and_grpc_through_the_operators_service(world: World) -> None:
    """A real modelship-server behind the Service the operator builds, reached at the URLs the
    operator reports: REST in absolute form as sent, gRPC through a CONNECT tunnel."""
    if not HALF_PLUS_TWO.is_dir():
        pytest.skip(f"TF Serving reference models not found at {HALF_PLUS_TWO}")
    ref = ModelDeploymentRef("half", world.namespace, uid="0", generation=1)
    service = build_service(ref)
    world.create_service(service)
    ip = world.address()
    server = [
        str(Path(sys.executable).parent / "modelship-server"),
        f"--host={ip}",
        f"--port={GRPC_PORT}",
        f"--rest_api_port={REST_PORT}",
        "--model_name=half",
        f"--model_base_path={HALF_PLUS_TWO}",
    ]
    world.start(server, ip, REST_PORT, timeout=240)
    ports = {"http": REST_PORT, "grpc": GRPC_PORT}
    world.create_pod("half-0", service["spec"]["selector"], ports, ip)

    url = f"http://half.{world.namespace}.svc:{REST_PORT}/v1/models/half:predict"
    predict = ("-X", "POST", "-H", "Content-Type: application/json")
    predict += ("-d", '{"instances": [1.0, 2.0, 5.0]}')
    world.converge("the model pod", lambda: world.curl(url, *predict).status == 200)
    assert world.curl(url, *predict).body.replace(" ", "").replace("\n", "") == (
        '{"predictions":[2.5,3.0,4.5]}'
    )

    import numpy as np  # noqa: PLC0415  (TensorFlow only for the test that needs it)
    import tensorflow as tf  # noqa: PLC0415
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: PLC0415

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0, 5.0], dtype=tf.float32))
    target = f"half.{world.namespace}.svc:{GRPC_PORT}"
    with grpc.insecure_channel(target, options=[("grpc.http_proxy", world.proxy_url)]) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=60
        )
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs["y"]), [2.5, 3.0, 4.5])
    log = world.proxy_log.read_text()
    assert f"-> {world.namespace}/half port {GRPC_PORT}: half-0 {ip}:{GRPC_PORT}" in log
