"""kube-apiserver: RBAC and admission on, an audit log of the operator's requests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import Layout, api_request
from .process import Command

SERVICE_CIDR = "10.96.0.0/16"
AUDIT_POLICY_FILE = "audit-policy.yaml"
# The operator runs on the host with the identity its Helm chart's ServiceAccount would give
# its pod, so the chart's RBAC is what it is allowed to do.
OPERATOR_NAMESPACE = "modelship-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:modelship-operator"


def audit_log_path(logs: Path) -> Path:
    """Every request the operator's identity made, as the apiserver saw it (JSON lines)."""
    return logs / "audit-operator.jsonl"


def audit_policy(audited_user: str) -> str:
    """Metadata for one user's requests, nothing for anyone else's."""
    return (
        "apiVersion: audit.k8s.io/v1\n"
        "kind: Policy\n"
        "omitStages: [RequestReceived]\n"
        "rules:\n"
        f'- level: Metadata\n  users: ["{audited_user}"]\n'
        "- level: None\n"
    )


def apiserver_command(
    binary: Path, pki: Path, etcd_port: int, secure_port: int, policy: Path, audit_log: Path
) -> Command:
    return Command(
        [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={secure_port}",
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
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--v=1",
        ]
    )


@dataclass(frozen=True)
class ApiServer:
    name: str = "kube-apiserver"
    port_names: tuple[str, ...] = ("apiserver",)

    def prepare(self, layout: Layout) -> None:
        (layout.root / AUDIT_POLICY_FILE).write_text(audit_policy(OPERATOR_USER))

    def command(self, layout: Layout) -> Command:
        return apiserver_command(
            layout.binary("kube-apiserver"),
            layout.pki,
            layout.ports["etcd"],
            layout.ports["apiserver"],
            layout.root / AUDIT_POLICY_FILE,
            audit_log_path(layout.logs),
        )

    def ready(self, layout: Layout) -> bool:
        return bool(api_request(layout, "GET", "/readyz") == "ok")
