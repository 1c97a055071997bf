"""Names, labels and ports shared by every child of a ModelDeployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.crds import GROUP, VERSION
from ..api.modeldeployment import ModelDeploymentSpec

MANAGED_BY = "modelship"
FIELD_MANAGER = "modelship"
OWNER_LABEL = "modelship.dev/modeldeployment"
REST_PORT = 8501
GRPC_PORT = 8500
# With spec.server.tls: plain HTTP for probes, the version check and scrapes (health, model
# status and metrics only), since none of those can present a client certificate.
HEALTH_PORT = 8502
MODEL_MOUNT = "/mnt/models"


@dataclass(frozen=True)
class ObjectRef:
    """What builders, status writes and events need from an object of ours besides its spec."""

    name: str
    namespace: str
    uid: str
    generation: int
    kind: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> ObjectRef:
        meta = body["metadata"]
        return ObjectRef(
            meta["name"],
            meta["namespace"],
            meta["uid"],
            int(meta.get("generation", 1)),
            str(body["kind"]),
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class ModelDeploymentRef(ObjectRef):
    """A ModelDeployment's reference (the kind is implied)."""

    kind: str = "ModelDeployment"

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ModelDeploymentRef:
        meta = body["metadata"]
        return cls(meta["name"], meta["namespace"], meta["uid"], int(meta.get("generation", 1)))


def model_name(ref: ModelDeploymentRef, spec: ModelDeploymentSpec) -> str:
    return spec.model_name or ref.name


def selector_labels(ref: ModelDeploymentRef) -> dict[str, str]:
    """Immutable once a Deployment exists, so only the owner's name."""
    return {OWNER_LABEL: ref.name}


def common_labels(ref: ModelDeploymentRef) -> dict[str, str]:
    return {
        **selector_labels(ref),
        "app.kubernetes.io/name": "modelship-server",
        "app.kubernetes.io/instance": ref.name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_string(ref: ModelDeploymentRef) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(ref).items())


def owner_reference(ref: ObjectRef) -> dict[str, Any]:
    """Our object as the controller owner of a child: children are routed to it by this."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": ref.kind,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(ref: ModelDeploymentRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "namespace": ref.namespace,
        "labels": common_labels(ref),
        "ownerReferences": [owner_reference(ref)],
    }


def rest_url(ref: ModelDeploymentRef, spec: ModelDeploymentSpec) -> str:
    host = f"{ref.name}.{ref.namespace}.svc"
    scheme = "https" if spec.server.tls is not None else "http"
    return f"{scheme}://{host}:{REST_PORT}/v1/models/{model_name(ref, spec)}"


def monitoring_port(spec: ModelDeploymentSpec) -> int:
    """Where probes, the version check and Prometheus reach a pod over plain HTTP."""
    return HEALTH_PORT if spec.server.tls is not None else REST_PORT


def grpc_address(ref: ModelDeploymentRef) -> str:
    return f"{ref.name}.{ref.namespace}.svc:{GRPC_PORT}"
