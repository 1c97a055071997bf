"""A local cluster on loopback, every component a process with its log in one folder: etcd,
kube-apiserver, controller-manager, scheduler, kwok (fake nodes), the process-pod kubelet (real
pods), the service proxy, Prometheus and the model store. This module decides the order they
start in and keeps their ports and pids in state.json; each component's own module says how to
run it. Installing modelship into the cluster is `product.py`'s job."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import seed_model
from .cache import default_bin_dir
from .components import modelstore
from .components import prometheus as prometheus_component
from .components.apiserver import OPERATOR_NAMESPACE, OPERATOR_USER, ApiServer, audit_log_path
from .components.base import Component, Layout, api_request
from .components.controller_manager import ControllerManager
from .components.etcd import Etcd
from .components.kwok import POD_CIDR, Kwok
from .components.modelstore import ModelStore
from .components.process import ClusterError, Command, Supervisor, free_port
from .components.processpods import ProcessPods, node_cidr, pick_process_cidr
from .components.prometheus import Prometheus
from .components.scheduler import Scheduler
from .components.serviceproxy import ServiceProxy
from .kubeconfig import write_kubeconfig
from .nodes import DEFAULT_POOLS, NodePool, build_nodes, process_nodes
from .pki import CertificateAuthority, service_account_keys

__all__ = [
    "OPERATOR_NAMESPACE",
    "OPERATOR_USER",
    "POD_CIDR",
    "ClusterError",
    "LocalCluster",
    "default_bin_dir",
    "free_port",
]


CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
STATE_FILE = "state.json"
SEED_BUILD = "seed-model-build"

# Client identities: (common name, group). The kubelets (kwok, process pods) and the service
# proxy act for the whole cluster, as system:masters.
IDENTITIES: dict[str, tuple[str, str | None]] = {
    "admin": ("modelship-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    "processpods": ("modelship-processpods", "system:masters"),
    "serviceproxy": ("modelship-serviceproxy", "system:masters"),
    # Only what pod discovery needs: a ClusterRole made at start (prometheus_rbac).
    prometheus_component.IDENTITY: (prometheus_component.USER, None),
    "operator": (OPERATOR_USER, "system:serviceaccounts"),
}


@dataclass
class LocalCluster:
    """One cluster rooted at `root` (pki/, logs/, etcd/, kubeconfig, state.json...).

    `serving` adds what makes the cluster serve models for real: the process-pod kubelet (for
    pools with runs_processes), the service proxy, Prometheus and the model store."""

    root: Path
    bin_dir: Path = field(default_factory=default_bin_dir)
    pools: tuple[NodePool, ...] | list[NodePool] = DEFAULT_POOLS
    pod_cidr: str = POD_CIDR
    # Loopback range the process nodes' pods get their addresses from.
    process_cidr: str = field(default_factory=pick_process_cidr)
    serving: bool = True
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Components run with the cluster folder as their working directory.
        self.root = self.root.resolve()
        self.supervisor = Supervisor(logs=self.logs, cwd=self.root, pids=self.pids)
        self._seed_build: subprocess.Popen[bytes] | None = None

    # ---- where things are ------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        return Layout(root=self.root, bin_dir=self.bin_dir, ports=self.ports)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def audit_log(self) -> Path:
        """Every request the operator's identity made, as the apiserver saw it (JSON lines)."""
        return audit_log_path(self.logs)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def proxy_url(self) -> str:
        """An HTTP forward proxy: `http://<service>.<namespace>.svc:<port>/` through it reaches
        a ready pod of that Service."""
        return f"http://127.0.0.1:{self.ports['serviceproxy']}"

    @property
    def model_store_url(self) -> str:
        return modelstore.endpoint(self.ports["modelstore"])

    def model_store_env(self) -> dict[str, str]:
        """AWS_* variables that read the model store (what its Secret holds)."""
        credentials = modelstore.load_or_create_credentials(self.root)
        return modelstore.client_env(self.ports["modelstore"], credentials)

    # ---- components ------------------------------------------------------------------------

    def components(self) -> dict[str, Component]:
        """Every component this cluster runs, by name, in start order."""
        listed: list[Component] = [
            Etcd(),
            ApiServer(),
            ControllerManager(),
            Scheduler(),
            Kwok(pod_cidr=self.pod_cidr),
        ]
        if self.serving:
            listed += [
                ProcessPods(node, node_cidr(self.process_cidr, i))
                for i, node in enumerate(process_nodes(self.pools))
            ]
            listed += [ServiceProxy(), Prometheus(), ModelStore()]
        return {component.name: component for component in listed}

    def start_component(self, name: str, timeout: float = 60) -> None:
        """Start one component (again) on the ports it had, and wait until it is ready."""
        component = self.components()[name]
        self._spawn_component(component)
        self._wait_ready(component, timeout)

    def stop_component(self, name: str) -> None:
        """SIGTERM, then SIGKILL after a grace period; its ports stay reserved in the state."""
        self.supervisor.stop(name)
        self.save_state()

    def _spawn_component(self, component: Component) -> None:
        for port_name in component.port_names:
            self.ports.setdefault(port_name, free_port())
        component.prepare(self.layout)
        self.spawn(component.name, component.command(self.layout))

    def _wait_ready(self, component: Component, timeout: float) -> None:
        layout = self.layout
        self.wait_for(f"{component.name} to be ready", lambda: component.ready(layout), timeout)

    def spawn(self, name: str, command: Command) -> None:
        """Run one process of the cluster, its output in logs/<name>.log; stop() stops it."""
        self.supervisor.spawn(name, command)
        self.save_state()

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        self.supervisor.wait_for(what, check, timeout, self.log_tails)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Bring every component up, nodes Ready and the model store seeded; raise
        ClusterError on failure."""
        self._check_binaries()
        for sub in ("pki", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        components = self.components()
        for component in components.values():
            for port_name in component.port_names:
                self.ports.setdefault(port_name, free_port())
        self._write_pki()
        try:
            if self.serving:
                self._start_seed_build()
            for name in ("etcd", "kube-apiserver"):
                self._spawn_component(components[name])
                self._wait_ready(components[name], timeout)
            if self.serving:
                for doc in prometheus_component.prometheus_rbac():
                    self._create(doc)
            # The rest depends only on the apiserver: start it all, then wait for each.
            rest = [c for n, c in components.items() if n not in ("etcd", "kube-apiserver")]
            for component in rest:
                self._spawn_component(component)
            self._create_nodes()
            self._wait_nodes_ready(timeout)
            self._wait_default_service_account(timeout)
            for component in rest:
                self._wait_ready(component, timeout)
            if "modelstore" in components:
                self._seed_model_store(timeout)
                self.model_store_secret("default")
        except BaseException:
            self.stop(remove=False)
            raise

    def stop(self, *, remove: bool = False) -> None:
        """Stop every component (newest first); `remove` deletes the folder, logs included."""
        if self._seed_build is not None and self._seed_build.poll() is None:
            self._seed_build.kill()
            self._seed_build.wait()
        self.supervisor.stop_all()
        state = self.root / STATE_FILE
        if state.exists():
            state.unlink()
        if remove and self.root.exists():
            subprocess.run(["rm", "-rf", str(self.root)], check=False)

    def running(self) -> bool:
        return bool(self.pids) and all(self.supervisor.alive(name) for name in self.pids)

    def save_state(self) -> None:
        state = {
            "ports": self.ports,
            "pids": self.pids,
            "bin_dir": str(self.bin_dir),
            "pools": [dataclasses.asdict(pool) for pool in self.pools],
            "pod_cidr": self.pod_cidr,
            "process_cidr": self.process_cidr,
            "serving": self.serving,
        }
        (self.root / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, root: Path) -> LocalCluster | None:
        """The cluster a previous `up` left running at `root`, if its state file is there."""
        path = root / STATE_FILE
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return cls(
            root=root,
            bin_dir=Path(state["bin_dir"]),
            pools=[NodePool(**pool) for pool in state.get("pools", [])] or DEFAULT_POOLS,
            pod_cidr=state.get("pod_cidr", POD_CIDR),
            process_cidr=state.get("process_cidr", pick_process_cidr()),
            serving=state.get("serving", True),
            ports=state["ports"],
            pids=state["pids"],
        )

    def log_tails(self, lines: int = 30) -> str:
        out = [f"component logs: {self.logs}"]
        for path in sorted(self.logs.glob("*.log")) if self.logs.exists() else []:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {path.name} (last {len(tail)} lines)")
            out.extend(tail)
        return "\n".join(out)

    # ---- API access ------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call to the apiserver as the cluster admin; returns the decoded JSON."""
        return api_request(self.layout, method, path, body)

    def kubectl(
        self, *args: str, check: bool = True, input_text: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def model_store_secret(self, namespace: str) -> None:
        """The Secret `local-model-store` (AWS_* variables reading the model store) in
        `namespace`, replaced if it is there already."""
        self._create(modelstore.secret_manifest(namespace, self.model_store_env()), replace=True)

    # ---- start-up steps --------------------------------------------------------------------

    def _check_binaries(self) -> None:
        needed = [*CONTROL_PLANE_BINARIES, "kwok"] + (["versitygw"] if self.serving else [])
        missing = [b for b in needed if not (self.bin_dir / b).exists()]
        if missing:
            raise ClusterError(
                f"missing {', '.join(missing)} in {self.bin_dir}; build them with `make toolchain`"
            )
        prometheus_binary = prometheus_component.binary(self.bin_dir)
        if self.serving and not prometheus_binary.exists():
            raise ClusterError(
                f"no Prometheus at {prometheus_binary}: build it with `make toolchain`"
                f" or set {prometheus_component.BINARY_ENV}"
            )

    def _write_pki(self) -> None:
        pki = self.root / "pki"
        ca = CertificateAuthority(pki)
        ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", "10.96.0.1"),
        )
        service_account_keys(pki)
        for name, (common_name, org) in IDENTITIES.items():
            pair = ca.issue(name, common_name, organization=org)
            target = self.kubeconfig if name == "admin" else pki / f"{name}.kubeconfig"
            write_kubeconfig(target, self.server, ca.pair.cert, pair, user=name)

    def _start_seed_build(self) -> None:
        """Building the seed model imports TensorFlow (seconds): done in the background while
        the control plane starts, and only when the cache does not have it."""
        if seed_model.is_built(seed_model.cached_path()):
            return
        with open(self.logs / f"{SEED_BUILD}.log", "ab") as out:
            self._seed_build = subprocess.Popen(
                [sys.executable, "-m", "modelship_localcluster.seed_model"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _seed_model_store(self, timeout: float) -> None:
        if self._seed_build is not None:
            code = self._seed_build.wait(timeout=max(timeout, 300))
            self._seed_build = None
            if code != 0:
                raise ClusterError(f"building the seed model failed\n{self.log_tails()}")
        credentials = modelstore.load_or_create_credentials(self.root)
        modelstore.seed(self.ports["modelstore"], credentials, seed_model.cached_path())

    def _create(self, body: dict[str, Any], *, replace: bool = False) -> None:
        """POST the object; when it exists already, PUT it if `replace`, else leave it."""
        collection = _collection_path(body)
        try:
            self.request("POST", collection, body)
        except urllib.error.HTTPError as err:
            if err.code != 409:
                raise
            if replace:
                self.request("PUT", f"{collection}/{body['metadata']['name']}", body)

    def _node_objects(self) -> list[dict[str, Any]]:
        """Every pool's nodes, but a process node only when its kubelet runs (a node without
        one would never turn Ready)."""
        kubelets = {c.node for c in self.components().values() if isinstance(c, ProcessPods)}
        process = set(process_nodes(self.pools))
        return [
            node
            for node in build_nodes(self.pools)
            if node["metadata"]["name"] not in process or node["metadata"]["name"] in kubelets
        ]

    def _create_nodes(self) -> None:
        for node in self._node_objects():
            self._create(node)  # already there from an earlier start: left as it is

    def _nodes(self) -> Iterator[dict[str, Any]]:
        yield from self.request("GET", "/api/v1/nodes")["items"]

    def _wait_nodes_ready(self, timeout: float) -> None:
        expected = {node["metadata"]["name"] for node in self._node_objects()}

        def all_ready() -> bool:
            ready = {
                node["metadata"]["name"]
                for node in self._nodes()
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", [])
                )
            }
            return expected <= ready

        self.wait_for(f"{len(expected)} nodes to be Ready", all_ready, timeout)

    def _wait_default_service_account(self, timeout: float) -> None:
        # Pods are refused until the controller-manager has made the namespace's default account.
        def exists() -> bool:
            return bool(self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default"))

        self.wait_for("the default service account", exists, timeout)


def _collection_path(body: dict[str, Any]) -> str:
    """The REST collection an object is created in (the kinds the cluster makes itself)."""
    group_version: str = body["apiVersion"]
    plural = {
        "Node": "nodes",
        "Secret": "secrets",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
    }[body["kind"]]
    prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    namespace = body["metadata"].get("namespace")
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
