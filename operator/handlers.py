"""kopf wiring only: watches feed caches (indexes) and queue the owning ModelDeployment.
All decisions live in controller/; all writes in kube.py."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from .api.crds import GROUP, VERSION
from .controller.runtime import CONTROLLER
from .resources.names import MANAGED_BY, OWNER_LABEL
from .settings import SETTINGS

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("", "v1", "configmaps"),
    ("", "v1", "pods"),
)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own events, only the ones users need
    settings.persistence.finalizer = f"{GROUP}/finalizer"  # none is set: no deletion handlers
    for group, version, plural in CHILD_RESOURCES:
        key = (group, version, plural) if group else (version, plural)
        settings.watching.label_selectors[key] = f"app.kubernetes.io/managed-by={MANAGED_BY}"
    await CONTROLLER.start(
        SETTINGS.workers,
        SETTINGS.resync_seconds,
        SETTINGS.version_timeout,
        SETTINGS.prometheus,
        SETTINGS.autoscale_tick_seconds,
    )


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await CONTROLLER.stop()


def _plain(body: kopf.Body) -> dict[str, Any]:
    obj = copy.deepcopy(dict(body))
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def _owned(namespace: str | None, labels: kopf.Labels, body: kopf.Body) -> Any:
    owner = labels.get(OWNER_LABEL)
    return {(namespace, owner): _plain(body)} if owner and namespace else None


@kopf.index(GROUP, VERSION, "modeldeployments")
def modeldeployments(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): _plain(body)}


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
def deployments(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    return _owned(namespace, labels, body)


@kopf.index("v1", "services", labels=MANAGED)
def services(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    return _owned(namespace, labels, body)


@kopf.index("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
def poddisruptionbudgets(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> Any:
    return _owned(namespace, labels, body)


@kopf.index("v1", "configmaps", labels=MANAGED)
def configmaps(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    return _owned(namespace, labels, body)


@kopf.index("v1", "pods", labels=MANAGED)
def pods(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    owner = labels.get(OWNER_LABEL)
    if not owner:
        return None
    # Only what status needs: pods are many and change often.
    summary = {
        "metadata": {k: body["metadata"].get(k) for k in ("name", "creationTimestamp")},
        "status": {
            k: copy.deepcopy(body.get("status", {}).get(k))
            for k in ("phase", "podIP", "conditions", "initContainerStatuses", "containerStatuses")
            if body.get("status", {}).get(k) is not None
        },
    }
    return {(namespace, owner): summary}


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def modeldeployment_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
    CONTROLLER.notify((namespace or "", name), kwargs)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
@kopf.on.event("v1", "pods", labels=MANAGED)
async def child_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    owner = labels.get(OWNER_LABEL)
    if owner and namespace:
        CONTROLLER.notify((namespace, owner), kwargs)
