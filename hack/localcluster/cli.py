"""`modelship-cluster up|down|status|env|logs`: the local cluster from a shell."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import product
from .cluster import ClusterError, LocalCluster, default_bin_dir
from .components import modelstore
from .nodes import DEFAULT_POOLS, load_pools

PROXY_ENV = "MODELSHIP_PROXY"
PROMETHEUS_ENV = "MODELSHIP_PROMETHEUS"


def install_crds(cluster: LocalCluster, crds: Path) -> None:
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=modelship-cluster",
        "-f",
        str(crds),
    )
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))


# Refused by admission/ once it is in effect: a request over its limit, in each kind.
_OVER_LIMIT = """
apiVersion: modelship.dev/v1alpha1
kind: {kind}
metadata: {{name: admission-probe}}
spec: {spec}
"""
_OVER = "{requests: {cpu: 2}, limits: {cpu: 1}}"
_PROBES = {
    "ModelDeployment": f"{{storageUri: 's3://models/m', server: {{resources: {_OVER}}}}}",
    "TrainingJob": f"{{replicaSpecs: {{worker: {{replicas: 1, image: tf, resources: {_OVER}}}}}}}",
}


def install_admission(cluster: LocalCluster, folder: Path, timeout: float = 60) -> None:
    """Apply the ValidatingAdmissionPolicies and their bindings, and return once the apiserver
    enforces them: a policy takes a moment to be compiled and picked up after it is created."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=modelship-cluster",
        "-f",
        str(folder),
    )
    deadline = time.monotonic() + timeout
    pending = dict(_PROBES)
    while pending:
        for kind, spec in list(pending.items()):
            result = cluster.kubectl(
                "create",
                "--dry-run=server",
                "-f",
                "-",
                input_text=_OVER_LIMIT.format(kind=kind, spec=spec),
                check=False,
            )
            if "ValidatingAdmissionPolicy" in result.stderr:
                del pending[kind]
        if pending and time.monotonic() > deadline:
            raise ClusterError(f"admission policies from {folder} not in effect for {pending}")
        if pending:
            time.sleep(0.2)


def shell_exports(cluster: LocalCluster) -> list[str]:
    """`export` lines pointing a shell at the cluster: kubectl, and the URLs of what it serves."""
    exports = [f"export KUBECONFIG={cluster.kubeconfig}", f"export PATH={cluster.bin_dir}:$PATH"]
    if "serviceproxy" in cluster.ports:
        exports.append(f"export {PROXY_ENV}={cluster.proxy_url}")
    if "prometheus" in cluster.ports:
        exports.append(f"export {PROMETHEUS_ENV}={cluster.prometheus_url}")
    return exports


def service_urls(cluster: LocalCluster) -> list[str]:
    lines = [f"apiserver:    {cluster.server}"]
    if "prometheus" in cluster.ports:
        lines.append(f"Prometheus:   {cluster.prometheus_url}")
    if "serviceproxy" in cluster.ports:
        lines.append(
            f"proxy:        {cluster.proxy_url}"
            f"  (curl -x ${PROXY_ENV} http://<service>.<namespace>.svc:8501/...)"
        )
    if "modelstore" in cluster.ports:
        lines.append(
            f"model store:  {cluster.model_store_url}  (s3://{modelstore.BUCKET}/"
            f"{modelstore.SEED_PREFIX.split('/')[0]}; keys in Secret {modelstore.SECRET_NAME})"
        )
    return lines


def _up(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    existing = LocalCluster.attach(root)
    if existing and existing.running():
        print(f"already running: {existing.server}")
        cluster = existing
    else:
        if existing:
            existing.stop(remove=True)
        pools = load_pools(args.nodes.read_text()) if args.nodes else DEFAULT_POOLS
        cluster = LocalCluster(root=root, bin_dir=args.bin_dir, pools=pools)
        began = time.monotonic()
        try:
            cluster.start(timeout=args.timeout)
        except ClusterError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"cluster up in {time.monotonic() - began:.1f}s at {cluster.server}")
    if args.crds and args.crds.exists():
        install_crds(cluster, args.crds)
        print(f"CRDs from {args.crds} installed")
    if args.admission and args.admission.exists():
        install_admission(cluster, args.admission)
        print(f"admission policies from {args.admission} in effect")
    if args.operator and "operator" not in cluster.pids:
        product.install_chart(cluster, args.chart)
        product.start_operator(cluster)
        print(f"modelship operator running (chart {args.chart}, RBAC of its ServiceAccount)")
    print("\n" + "\n".join(service_urls(cluster)))
    print('\nUse it with kubectl (or: eval "$(modelship-cluster env)"):')
    print("\n".join(f"  {line}" for line in shell_exports(cluster)))
    print(
        "  kubectl get nodes -L nvidia.com/gpu.product\n"
        "  kubectl apply -f examples/\n"
        "  kubectl wait --for=condition=Ready modeldeployment --all --timeout=60s\n"
        "  kubectl get modelship\n"
        f"Component logs: {cluster.logs}\n"
        "Stop it with: make down"
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    cluster = LocalCluster.attach(args.root.resolve())
    if cluster is None:
        print("no cluster running")
        return 0
    cluster.stop(remove=True)
    print("stopped and removed")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.attach(args.root.resolve())
    if cluster is None or not cluster.running():
        print("not running")
        return 1
    print(f"running at {cluster.server}; KUBECONFIG={cluster.kubeconfig}")
    print("\n".join(service_urls(cluster)))
    return 0


def _env(args: argparse.Namespace) -> int:
    cluster = LocalCluster.attach(args.root.resolve())
    if cluster is None or not cluster.running():
        print("echo 'modelship-cluster: not running' >&2; false")
        return 1
    print("\n".join(shell_exports(cluster)))
    return 0


def _logs(args: argparse.Namespace) -> int:
    cluster = LocalCluster(root=args.root.resolve())
    print(cluster.log_tails(lines=args.lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelship-cluster", description=__doc__)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(".cluster/default"),
        help="folder holding the cluster's state, certificates and logs",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="start the cluster (control plane, nodes, Prometheus, model store), modelship"
    )
    up.add_argument("--bin-dir", type=Path, default=default_bin_dir())
    up.add_argument("--nodes", type=Path, help="YAML list of node pools (default: 2 CPU, 3 GPU)")
    up.add_argument("--crds", type=Path, default=Path("crds"), help="CRD folder to apply")
    up.add_argument(
        "--admission",
        type=Path,
        default=Path("admission"),
        help="ValidatingAdmissionPolicy folder to apply",
    )
    up.add_argument("--chart", type=Path, default=Path("charts/modelship"), help="Helm chart")
    up.add_argument(
        "--no-operator",
        dest="operator",
        action="store_false",
        help="start only the control plane (with the CRDs)",
    )
    up.add_argument("--timeout", type=float, default=120)
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop the control plane and delete its folder").set_defaults(
        func=_down
    )
    sub.add_parser("status", help="exit 0 when the cluster runs; its URLs").set_defaults(
        func=_status
    )
    sub.add_parser(
        "env", help='shell exports for the running cluster: eval "$(modelship-cluster env)"'
    ).set_defaults(func=_env)
    logs = sub.add_parser("logs", help="print the tail of every component's log")
    logs.add_argument("--lines", type=int, default=40)
    logs.set_defaults(func=_logs)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
