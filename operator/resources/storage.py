"""How model files reach the server: a read-only volume, or an init container that fetches them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from .names import MODEL_MOUNT

MODEL_VOLUME = "model"
FETCH_CONTAINER = "storage-initializer"


@dataclass(frozen=True)
class ModelStorage:
    """The pod-spec pieces one storageUri needs."""

    volume: dict[str, Any]
    mount: dict[str, Any]
    init_containers: list[dict[str, Any]] = field(default_factory=list)


def model_storage(
    storage_uri: str,
    *,
    image: str,
    secret_name: str | None,
    security_context: dict[str, Any],
    resources: dict[str, Any] | None = None,
) -> ModelStorage:
    """pvc:// and file:// mount in place; s3://, gs:// and http(s):// are fetched into an emptyDir
    by the server image's own `modelship fetch` command, with credentials only from the Secret."""
    uri = urlparse(storage_uri)
    read_only_mount = {"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
    if uri.scheme == "pvc":
        sub_path = uri.path.strip("/")
        return ModelStorage(
            volume={
                "name": MODEL_VOLUME,
                "persistentVolumeClaim": {"claimName": uri.netloc, "readOnly": True},
            },
            mount={**read_only_mount, **({"subPath": sub_path} if sub_path else {})},
        )
    if uri.scheme == "file":
        return ModelStorage(
            volume={"name": MODEL_VOLUME, "hostPath": {"path": uri.path, "type": "Directory"}},
            mount=read_only_mount,
        )
    fetch: dict[str, Any] = {
        "name": FETCH_CONTAINER,
        "image": image,
        "command": ["modelship", "fetch", f"--uri={storage_uri}", f"--dest={MODEL_MOUNT}"],
        "volumeMounts": [
            {"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT},
            {"name": "scratch", "mountPath": "/tmp"},
        ],
        "securityContext": security_context,
    }
    if resources:
        fetch["resources"] = resources
    if secret_name:
        fetch["envFrom"] = [{"secretRef": {"name": secret_name}}]
    return ModelStorage(
        volume={"name": MODEL_VOLUME, "emptyDir": {}},
        mount=read_only_mount,
        init_containers=[fetch],
    )
