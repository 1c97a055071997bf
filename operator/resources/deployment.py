"""The model-server Deployment for a ModelDeployment."""

from __future__ import annotations

import hashlib
from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from . import scheduling
from .batching import BATCHING_FILE, BATCHING_MOUNT, batching_config_name, batching_parameters
from .names import (
    GRPC_PORT,
    HEALTH_PORT,
    MODEL_MOUNT,
    REST_PORT,
    ModelDeploymentRef,
    child_metadata,
    common_labels,
    model_name,
    monitoring_port,
    selector_labels,
)
from .storage import model_storage

SERVER_CONTAINER = "model-server"
SCRATCH_VOLUME = "scratch"
TLS_VOLUME = "tls"
# spec.server.tls's Secret: the kubelet swaps in a renewed certificate (one symlink rename) and the
# server, watching these files, takes it for new connections.
TLS_MOUNT = "/etc/modelship/tls"
# A pod leaving (scale-down, rollout) keeps serving this long before SIGTERM, while Services and
# proxies drop it from their endpoints; then the server drains what is in flight.
PRE_STOP_SECONDS = 5

# Pod Security "restricted": what every container of ours runs with.
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def server_args(ref: ModelDeploymentRef, spec: ModelDeploymentSpec) -> list[str]:
    """`tensorflow_model_server` flags, so any TF Serving-compatible image can run the pod."""
    args = [
        f"--port={GRPC_PORT}",
        f"--rest_api_port={REST_PORT}",
        f"--model_name={model_name(ref, spec)}",
        f"--model_base_path={MODEL_MOUNT}",
    ]
    if spec.batching is not None and spec.batching.enabled:
        args += ["--enable_batching=true", f"--batching_parameters_file={BATCHING_FILE}"]
    if spec.server.tls is not None:
        args += [f"--ssl_cert_dir={TLS_MOUNT}", f"--health_port={HEALTH_PORT}"]
        if spec.server.tls.client_auth:
            args.append("--ssl_client_verify=true")
    return [*args, *(spec.server.args or [])]


def _probe(path: str, port: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, **timing}


def _server_container(ref: ModelDeploymentRef, spec: ModelDeploymentSpec) -> dict[str, Any]:
    base = (
        spec.server.resources.model_dump(by_alias=True, exclude_none=True)
        if (spec.server.resources)
        else None
    )
    # With TLS the kubelet probes the plain health port: it has no client certificate for mTLS.
    probe_port = "health" if spec.server.tls is not None else "http"
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": spec.server.image,
        "imagePullPolicy": spec.server.image_pull_policy,
        "args": server_args(ref, spec),
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": REST_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": _probe(
            "/v2/health/ready", probe_port, periodSeconds=5, failureThreshold=3
        ),
        "livenessProbe": _probe(
            "/v2/health/live", probe_port, periodSeconds=10, failureThreshold=3
        ),
        # Large SavedModels take a while to load and warm up; liveness waits for this.
        "startupProbe": _probe(
            "/v2/health/live", probe_port, periodSeconds=5, failureThreshold=120
        ),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": SCRATCH_VOLUME, "mountPath": "/tmp"}],
    }
    resources = scheduling.resources(base, spec.gpu)
    if resources:
        container["resources"] = resources
    if spec.server.env:
        container["env"] = [e.model_dump(by_alias=True, exclude_none=True) for e in spec.server.env]
    if spec.server.tls is not None:
        container["ports"].append(
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}
        )
        container["volumeMounts"].append(
            {"name": TLS_VOLUME, "mountPath": TLS_MOUNT, "readOnly": True}
        )
    return container


def build_deployment(
    ref: ModelDeploymentRef, spec: ModelDeploymentSpec, replicas: int | None = None
) -> dict[str, Any]:
    """`replicas` is the autoscaler's count when autoscaling is on; spec.replicas otherwise."""
    if spec.storage_uri is None:  # spec.trainingJobName is resolved to storage before this
        raise ValueError("spec.storageUri is not resolved")
    container = _server_container(ref, spec)
    storage = model_storage(
        spec.storage_uri,
        image=spec.server.image,
        secret_name=spec.storage_secret_name,
        security_context=CONTAINER_SECURITY,
    )
    container["volumeMounts"].append(storage.mount)
    volumes: list[dict[str, Any]] = [
        {"name": SCRATCH_VOLUME, "emptyDir": {}},
        storage.volume,
    ]
    if spec.server.tls is not None:
        volumes.append(
            {
                "name": TLS_VOLUME,
                # Readable by the server's group (the pod's fsGroup) only.
                "secret": {"secretName": spec.server.tls.secret_name, "defaultMode": 0o440},
            }
        )
    template_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(monitoring_port(spec)),
        "prometheus.io/path": "/metrics",
    }
    if spec.batching is not None and spec.batching.enabled:
        config = batching_parameters(spec.batching)
        volumes.append({"name": "batching", "configMap": {"name": batching_config_name(ref)}})
        container["volumeMounts"].append(
            {"name": "batching", "mountPath": BATCHING_MOUNT, "readOnly": True}
        )
        # A changed ConfigMap alone would not restart pods; a changed template does.
        template_annotations["modelship.dev/batching-hash"] = hashlib.sha256(
            config.encode()
        ).hexdigest()[:16]

    pod_spec: dict[str, Any] = {
        "securityContext": POD_SECURITY,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": volumes,
    }
    if storage.init_containers:
        pod_spec["initContainers"] = storage.init_containers
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    tolerations = scheduling.tolerations(spec.tolerations, spec.gpu)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    affinity = scheduling.merge_affinity(spec.affinity, scheduling.gpu_node_requirements(spec.gpu))
    if affinity:
        pod_spec["affinity"] = affinity
    if _may_run_several(spec):
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(ref)},
                "matchLabelKeys": ["pod-template-hash"],
            }
        ]

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(ref),
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "selector": {"matchLabels": selector_labels(ref)},
            "strategy": {
                "type": "RollingUpdate",
                # Never drop below the desired count while rolling; GPUs permitting, add one.
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": common_labels(ref), "annotations": template_annotations},
                "spec": pod_spec,
            },
        },
    }


def _may_run_several(spec: ModelDeploymentSpec) -> bool:
    if spec.autoscaling is not None:
        return spec.autoscaling.max_replicas > 1
    return spec.replicas > 1
