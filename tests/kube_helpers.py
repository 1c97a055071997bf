"""Small helpers for tests that drive the real cluster through kubectl."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from modelship_localcluster.cluster import LocalCluster

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# Pod Security Standards: every test namespace enforces "restricted", so the apiserver's
# PodSecurity admission refuses any pod (ours or a test's) that would not run on a hardened
# cluster. A refusal is a 403 naming the field, at create time, or a ReplicaSet's FailedCreate.
POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": POD_SECURITY_LEVEL for mode in ("enforce", "warn")
}
# What a restricted pod needs: the pod's and each container's security context.
RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def namespace_object(name: str) -> dict[str, Any]:
    """A test namespace as the API takes it, with the Pod Security labels."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(POD_SECURITY_LABELS)},
    }


def restricted(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A test's own pod spec, with the security contexts the restricted level asks for (kept
    where the test set its own)."""
    pod_spec.setdefault("securityContext", {}).update(
        {k: v for k, v in RESTRICTED_POD_SECURITY.items() if k not in pod_spec["securityContext"]}
    )
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key, []):
            context = container.setdefault("securityContext", {})
            for field, value in RESTRICTED_CONTAINER_SECURITY.items():
                context.setdefault(field, value)
    return pod_spec


def new_namespace(cluster: LocalCluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "-f", "-", input_text=json.dumps(namespace_object(name)))
    # Pods are refused until the namespace's default service account exists.

    def account() -> str:
        return cluster.kubectl(
            "get", "serviceaccount", "default", "-n", name, "--ignore-not-found", "-o", "name"
        ).stdout.strip()

    wait_for("the default service account", account)
    return name


def model_deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"storageUri": "s3://models/half_plus_two", **spec},
    }


def apply(cluster: LocalCluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(obj)
    )


def get(cluster: LocalCluster, namespace: str, *what: str) -> Any:
    out = cluster.kubectl("get", *what, "-n", namespace, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}


def wait_ready(cluster: LocalCluster, namespace: str, name: str, timeout: int = 60) -> None:
    cluster.kubectl(
        "wait",
        "--for=condition=Ready",
        f"modeldeployment/{name}",
        "-n",
        namespace,
        f"--timeout={timeout}s",
        timeout=timeout + 10,
    )


def operator_writes(cluster: LocalCluster, namespace: str | None = None) -> list[dict[str, Any]]:
    """Write requests the operator's identity made, as the apiserver's audit log recorded them."""
    writes = []
    for line in cluster.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry["verb"] not in ("create", "update", "patch", "delete", "deletecollection"):
            continue
        if namespace and entry.get("objectRef", {}).get("namespace") != namespace:
            continue
        writes.append(entry)
    return writes
