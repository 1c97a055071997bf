"""Train → deploy: what a ModelDeployment with spec.trainingJobName serves. The TrainingJob's
status.exportedModelUri is `<output.storageUri>/<version>`; the Deployment fetches the base path
and the server serves its newest version. The exported URI also goes into the pod template, so a
later export rolls the pods (a rolling update: each new pod fetches before it is Ready, and the
old ones drain), and a TrainingJob run again keeps the model that serves until it exports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec

MODEL_URI_ANNOTATION = "modelship.dev/model-uri"


@dataclass(frozen=True)
class Waiting:
    """Nothing to serve yet: why, and whether waiting can help."""

    reason: str
    message: str
    stalled: bool = False


@dataclass(frozen=True)
class Resolved:
    spec: ModelDeploymentSpec  # with storageUri (and the Secret) filled in
    model_uri: str | None  # the exported version served; None for a plain storageUri


def _serving_uri(deployment: dict[str, Any] | None) -> str | None:
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("annotations") or {}).get(MODEL_URI_ANNOTATION)
    return value if isinstance(value, str) and value else None


def resolve(
    spec: ModelDeploymentSpec,
    training_job: dict[str, Any] | None,
    deployment: dict[str, Any] | None,
) -> Resolved | Waiting:
    name = spec.training_job_name
    if name is None:
        return Resolved(spec, None)
    status = (training_job or {}).get("status") or {}
    exported = status.get("exportedModelUri")
    if not isinstance(exported, str) or "/" not in exported:
        exported = _serving_uri(deployment)  # keep serving what a previous run exported
    if exported is None:
        return _waiting(name, training_job, status)
    base = exported.rstrip("/").rsplit("/", 1)[0]
    output = ((training_job or {}).get("spec") or {}).get("output") or {}
    secret = spec.storage_secret_name or output.get("storageSecretName")
    if not base.startswith(("s3://", "gs://", "http://", "https://")):
        secret = None  # mounted storage takes no credentials
    resolved = spec.model_copy(update={"storage_uri": base, "storage_secret_name": secret})
    return Resolved(resolved, exported)


def _waiting(name: str, training_job: dict[str, Any] | None, status: dict[str, Any]) -> Waiting:
    if training_job is None:
        return Waiting(
            "TrainingJobNotFound",
            f"spec.trainingJobName: TrainingJob {name} does not exist in this namespace (yet)",
        )
    if not ((training_job.get("spec") or {}).get("output") or {}).get("storageUri"):
        return Waiting(
            "NoModelExported",
            f"spec.trainingJobName: TrainingJob {name} has no spec.output, so it exports nothing",
            stalled=True,
        )
    state = status.get("state") or "Pending"
    if state == "Failed":
        return Waiting(
            "TrainingJobFailed",
            f"TrainingJob {name} failed without exporting a model; run it again",
            stalled=True,
        )
    percent = (status.get("progress") or {}).get("percent")
    done = f", {percent}%" if isinstance(percent, int) else ""
    return Waiting(
        "WaitingForTraining", f"waiting for TrainingJob {name} to export a model ({state}{done})"
    )


def mark_model_uri(deployment: dict[str, Any], model_uri: str) -> None:
    """Put the served export in the pod template: a new one rolls the pods."""
    template_meta = deployment["spec"]["template"].setdefault("metadata", {})
    template_meta.setdefault("annotations", {})[MODEL_URI_ANNOTATION] = model_uri
