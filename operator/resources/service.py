"""The Service in front of the model-server pods, and their PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec
from .names import GRPC_PORT, REST_PORT, ModelDeploymentRef, child_metadata, selector_labels


def build_service(ref: ModelDeploymentRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(ref),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ref),
            "ports": [
                {
                    "name": "http",
                    "port": REST_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
            ],
        },
    }


def wants_disruption_budget(spec: ModelDeploymentSpec) -> bool:
    floor = spec.autoscaling.min_replicas if spec.autoscaling is not None else spec.replicas
    return floor > 1


def build_disruption_budget(ref: ModelDeploymentRef) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(ref),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(ref)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
