"""The headless Service that gives every training pod a stable DNS name for TF_CONFIG."""

from __future__ import annotations

from typing import Any

from ..names import ObjectRef
from .names import TF_PORT, child_metadata, selector_labels, service_name


def build_service(ref: ObjectRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(ref, service_name(ref)),
        "spec": {
            "clusterIP": "None",
            # Tasks dial their peers while starting, before any of them is Ready.
            "publishNotReadyAddresses": True,
            "selector": selector_labels(ref),
            "ports": [{"name": "tf", "port": TF_PORT, "targetPort": TF_PORT, "protocol": "TCP"}],
        },
    }
