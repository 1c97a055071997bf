"""Start and stop a real control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler and kwok, each a process with its log in one folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .kubeconfig import write_kubeconfig
from .nodes import DEFAULT_POOLS, KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE, NodePool, build_nodes
from .pki import CertificateAuthority, service_account_keys

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# The operator runs on the host with the identity its Helm chart's ServiceAccount would give
# its pod, so the chart's RBAC is what it is allowed to do.
OPERATOR_NAMESPACE = "modelship-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:modelship-operator"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
STATE_FILE = "state.json"


class ClusterError(RuntimeError):
    """The cluster did not come up; the message ends with the tails of the component logs."""


def default_bin_dir() -> Path:
    """Where hack/toolchain/build.sh caches the binaries."""
    if "MODELSHIP_BIN_DIR" in os.environ:
        return Path(os.environ["MODELSHIP_BIN_DIR"])
    cache = os.environ.get("MODELSHIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelship"
    )
    return Path(cache) / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class LocalCluster:
    """One cluster rooted at `root` (pki/, logs/, etcd/, kubeconfig, state.json)."""

    root: Path
    bin_dir: Path = field(default_factory=default_bin_dir)
    pools: tuple[NodePool, ...] | list[NodePool] = DEFAULT_POOLS
    # kwok gives pods addresses from here; a loopback range lets a test run a real server
    # at a pod's own address (the Services' EndpointSlices then refuse those addresses).
    pod_cidr: str = POD_CIDR
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Components run with the cluster folder as their working directory.
        self.root = self.root.resolve()

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Bring every component up and wait for Ready nodes; raise ClusterError on failure."""
        missing = [b for b in BINARIES if not (self.bin_dir / b).exists()]
        if missing:
            raise ClusterError(
                f"missing {', '.join(missing)} in {self.bin_dir}; build them with `make toolchain`"
            )
        for sub in ("pki", "logs", "etcd"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver")}
        self._write_pki()
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._start_controllers()
            self._create_nodes()
            self._wait_nodes_ready(timeout)
            self._wait_default_service_account(timeout)
        except BaseException:
            self.stop(remove=False)
            raise

    def stop(self, *, remove: bool = False) -> None:
        """Stop every component (newest first); `remove` deletes the folder, logs included."""
        for name in reversed(list(self.pids)):
            self._terminate(name, self.pids[name])
        self.pids.clear()
        self._children.clear()
        state = self.root / STATE_FILE
        if state.exists():
            state.unlink()
        if remove and self.root.exists():
            subprocess.run(["rm", "-rf", str(self.root)], check=False)

    def running(self) -> bool:
        return bool(self.pids) and all(_pid_alive(pid) for pid in self.pids.values())

    def save_state(self) -> None:
        state = {"ports": self.ports, "pids": self.pids, "bin_dir": str(self.bin_dir)}
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
            ports=state["ports"],
            pids=state["pids"],
        )

    def log_tails(self, lines: int = 30) -> str:
        out = [f"component logs: {self.logs}"]
        for log in sorted(self.logs.glob("*.log")) if self.logs.exists() else []:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {log.name} (last {len(tail)} lines)")
            out.extend(tail)
        return "\n".join(out)

    # ---- API access ------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.root / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call to the apiserver as the cluster admin; returns the decoded JSON."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self._ssl_context(), timeout=10) as response:
            text = response.read()
        return json.loads(text) if text.startswith(b"{") else text.decode()

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

    # ---- components ------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        child = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            # Its own session: `make up` returns while the cluster keeps running.
            start_new_session=True,
        )
        log.close()
        self._children[name] = child
        self.pids[name] = child.pid
        self.save_state()

    def _terminate(self, name: str, pid: int) -> None:
        child = self._children.get(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                return
            if child is None and not _pid_alive(pid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child is not None:
            child.wait(timeout=10)

    def _exited(self) -> str:
        dead = [n for n, c in self._children.items() if c.poll() is not None]
        return f"exited early: {', '.join(dead)}\n" if dead else ""

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll `check`; give up at the deadline, or at once when a component has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if check():
                    return
            if self._exited():
                raise ClusterError(f"waiting for {what}: {self._failure_report()}")
            time.sleep(0.2)
        raise ClusterError(
            f"timed out after {timeout:.0f}s waiting for {what}\n{self._failure_report()}"
        )

    def _failure_report(self) -> str:
        return self._exited() + self.log_tails()

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
        identities = {
            "admin": ("modelship-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
            # kwok acts for every fake kubelet, writing node and pod status.
            "kwok": ("kwok-controller", "system:masters"),
            "operator": (OPERATOR_USER, "system:serviceaccounts"),
        }
        for name, (common_name, org) in identities.items():
            pair = ca.issue(name, common_name, organization=org)
            target = self.kubeconfig if name == "admin" else pki / f"{name}.kubeconfig"
            write_kubeconfig(target, self.server, ca.pair.cert, pair, user=name)

    def _start_etcd(self, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=modelship",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=modelship={peer}",
                # A throwaway test store: durability is not worth the fsync latency.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"{client}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")

        self._wait("etcd /health", healthy, timeout)

    @property
    def audit_log(self) -> Path:
        """Every request the operator's identity made, as the apiserver saw it (JSON lines)."""
        return self.logs / "audit-operator.jsonl"

    def _write_audit_policy(self) -> Path:
        policy = self.root / "audit-policy.yaml"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\n"
            "kind: Policy\n"
            "omitStages: [RequestReceived]\n"
            "rules:\n"
            f'- level: Metadata\n  users: ["{OPERATOR_USER}"]\n'
            "- level: None\n"
        )
        return policy

    def _start_apiserver(self, timeout: float) -> None:
        pki = self.root / "pki"
        policy = self._write_audit_policy()
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # Nothing runs in-cluster; a loopback address is not a valid endpoint anyway.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--v=1",
            ],
        )

        def ready() -> bool:
            return bool(self.request("GET", "/readyz") == "ok")

        self._wait("kube-apiserver /readyz", ready, timeout)

    def _start_controllers(self) -> None:
        pki = self.root / "pki"
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={pki / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                # A test cluster should not be the bottleneck when hundreds of objects change.
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--concurrent-deployment-syncs=20",
                "--concurrent-replicaset-syncs=20",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={pki / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
        )
        stages = resources.files("modelship_localcluster") / "stages"
        self._spawn(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={pki / 'kwok.kubeconfig'}",
                f"--config={stages / 'nodes.yaml'}",
                f"--config={stages / 'pods.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}",
                f"--cidr={self.pod_cidr}",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                "--server-address=",
            ],
        )

    # ---- the product ------------------------------------------------------------------------

    def helm(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "helm"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )

    def install_chart(self, chart: Path) -> None:
        """The chart's RBAC and ServiceAccount; its operator Deployment scaled to zero, since
        kwok pods run nothing: the operator process on the host takes its place."""
        self.helm(
            "upgrade",
            "--install",
            "modelship",
            str(chart),
            f"--namespace={OPERATOR_NAMESPACE}",
            "--create-namespace",
            "--skip-crds",
            "--set",
            "replicas=0",
            "--wait",
        )

    def start_operator(self, *extra_args: str) -> None:
        """Run `modelship-operator` as the chart's ServiceAccount; its log is logs/operator.log."""
        self.ports["operator-metrics"] = free_port()
        self.ports["operator-health"] = free_port()
        self._spawn(
            "operator",
            [
                sys.executable,
                "-m",
                "modelship_operator.main",
                f"--metrics-port={self.ports['operator-metrics']}",
                f"--health-port={self.ports['operator-health']}",
                *extra_args,
            ],
            env={**os.environ, "KUBECONFIG": str(self.root / "pki" / "operator.kubeconfig")},
        )
        self.save_state()

    def kill_operator(self, sig: int = signal.SIGKILL) -> None:
        """Stop the operator at once (SIGKILL: no clean-up, as a crash or OOM kill would)."""
        pid = self.pids.pop("operator", None)
        child = self._children.pop("operator", None)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if child is not None:
            child.wait(timeout=30)
        self.save_state()

    def _create_nodes(self) -> None:
        for node in build_nodes(self.pools):
            try:
                self.request("POST", "/api/v1/nodes", node)
            except urllib.error.HTTPError as err:
                if err.code != 409:  # already there from an earlier start
                    raise

    def _nodes(self) -> Iterator[dict[str, Any]]:
        yield from self.request("GET", "/api/v1/nodes")["items"]

    def _wait_nodes_ready(self, timeout: float) -> None:
        expected = {node["metadata"]["name"] for node in build_nodes(self.pools)}

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

        self._wait(f"{len(expected)} kwok nodes to be Ready", all_ready, timeout)

    def _wait_default_service_account(self, timeout: float) -> None:
        # Pods are refused until the controller-manager has made the namespace's default account.
        def exists() -> bool:
            return bool(self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default"))

        self._wait("the default service account", exists, timeout)
