"""`modelship-cluster up|down|status|logs`: the local control plane from a shell."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .cluster import ClusterError, LocalCluster, default_bin_dir
from .nodes import DEFAULT_POOLS, load_pools


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
        print(f"control plane up in {time.monotonic() - began:.1f}s at {cluster.server}")
    if args.crds and args.crds.exists():
        install_crds(cluster, args.crds)
        print(f"CRDs from {args.crds} installed")
    if args.operator and "operator" not in cluster.pids:
        cluster.install_chart(args.chart)
        cluster.start_operator()
        print(f"modelship operator running (chart {args.chart}, RBAC of its ServiceAccount)")
    print(
        "\nUse it with kubectl:\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n"
        f"  export PATH={cluster.bin_dir}:$PATH\n"
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
    up = sub.add_parser("up", help="start the control plane and install the CRDs")
    up.add_argument("--bin-dir", type=Path, default=default_bin_dir())
    up.add_argument("--nodes", type=Path, help="YAML list of node pools (default: 2 CPU, 3 GPU)")
    up.add_argument("--crds", type=Path, default=Path("crds"), help="CRD folder to apply")
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
    sub.add_parser("status", help="exit 0 when the control plane runs").set_defaults(func=_status)
    logs = sub.add_parser("logs", help="print the tail of every component's log")
    logs.add_argument("--lines", type=int, default=40)
    logs.set_defaults(func=_logs)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
