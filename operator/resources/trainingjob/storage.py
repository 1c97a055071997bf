"""Where a training pod writes: the export (output) and its BackupAndRestore checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ...api.trainingjob import Checkpoints, Output

OUTPUT_VOLUME = "output"
OUTPUT_MOUNT = "/mnt/output"
CHECKPOINT_VOLUME = "checkpoints"
CHECKPOINT_MOUNT = "/mnt/checkpoints"


@dataclass(frozen=True)
class PodStorage:
    """The pod-spec pieces one storage setting needs (env in the order it is to be set)."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)


def output_storage(output: Output | None) -> PodStorage:
    """pvc:// mounts the whole claim read-write and hands the trainer a file:// URI into it;
    other schemes pass through, with the Secret's keys as env like the fetch init container's."""
    if output is None:
        return PodStorage()
    uri = urlparse(output.storage_uri)
    env_from = (
        [{"secretRef": {"name": output.storage_secret_name}}] if output.storage_secret_name else []
    )
    if uri.scheme != "pvc":
        return PodStorage(env=[_output_env(output.storage_uri)], env_from=env_from)
    path = uri.path.strip("/")
    return PodStorage(
        volumes=[{"name": OUTPUT_VOLUME, "persistentVolumeClaim": {"claimName": uri.netloc}}],
        mounts=[{"name": OUTPUT_VOLUME, "mountPath": OUTPUT_MOUNT}],
        env=[_output_env(f"file://{OUTPUT_MOUNT}/{path}" if path else f"file://{OUTPUT_MOUNT}")],
    )


def _output_env(uri: str) -> dict[str, Any]:
    return {"name": "MODELSHIP_OUTPUT_URI", "value": uri}


def checkpoint_storage(checkpoints: Checkpoints | None) -> PodStorage:
    """A claim (subPath = its path) or a node folder; without either an emptyDir, which outlives
    a container restart (restartPolicy OnFailure) but not the pod."""
    volume: dict[str, Any] = {"name": CHECKPOINT_VOLUME, "emptyDir": {}}
    mount: dict[str, Any] = {"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT}
    if checkpoints is not None:
        uri = urlparse(checkpoints.storage_uri)
        if uri.scheme == "pvc":
            volume = {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": uri.netloc}}
            sub_path = uri.path.strip("/")
            if sub_path:
                mount["subPath"] = sub_path
        else:
            volume = {
                "name": CHECKPOINT_VOLUME,
                "hostPath": {"path": uri.path, "type": "DirectoryOrCreate"},
            }
    return PodStorage(
        volumes=[volume],
        mounts=[mount],
        env=[{"name": "MODELSHIP_CHECKPOINT_DIR", "value": CHECKPOINT_MOUNT}],
    )


def exported_model_uri(output: Output, reported: str) -> str:
    """The trainer reports its export under the URI it was given; for a claim that is the mount,
    which means nothing outside the pod, so it is turned back into the claim's pvc:// URI."""
    mounted = f"file://{OUTPUT_MOUNT}"
    uri = urlparse(output.storage_uri)
    if uri.scheme != "pvc" or not (reported == mounted or reported.startswith(mounted + "/")):
        return reported
    return f"pvc://{uri.netloc}{reported[len(mounted) :]}"
