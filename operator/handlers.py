"""kopf wiring only: watches feed caches (indexes) and queue the owning ModelDeployment.
All decisions live in controller/; all writes in kube.py."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from .api.crds import GROUP, VERSION
from .controller.runtime import CONTROLLER
from .resources.kinds import CHILDREN, ChildKind
from .resources.names import MANAGED_BY, OWNER_LABEL
from .settings import SETTINGS

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
PODS = ChildKind("Pod", "", "v1", "pods")  # watched for status, never written


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own events, only the ones users need
    settings.persistence.finalizer = f"{GROUP}/finalizer"  # none is set: no deletion handlers
    for child in (*CHILDREN, PODS):
        key = (
            (child.group, child.version, child.plural)
            if child.group
            else (child.version, child.plural)
        )
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


def owned(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    """Index of one child kind: the child by its owner's key."""
    owner = labels.get(OWNER_LABEL)
    return {(namespace, owner): _plain(body)} if owner and namespace else None


@kopf.index(GROUP, VERSION, "modeldeployments")
def modeldeployments(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): _plain(body)}


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


@kopf.on.event("v1", "pods", labels=MANAGED)
async def child_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    owner = labels.get(OWNER_LABEL)
    if owner and namespace:
        CONTROLLER.notify((namespace, owner), kwargs)


# One index and one event handler per child kind of the table. A kind whose CRD is not
# installed (KEDA's ScaledObject) is left unwatched by kopf until the CRD appears.
for _child in CHILDREN:
    kopf.index(
        group=_child.group,
        version=_child.version,
        plural=_child.plural,
        id=_child.index,
        labels=MANAGED,
    )(owned)
    kopf.on.event(
        group=_child.group,
        version=_child.version,
        plural=_child.plural,
        id=f"{_child.index}-changed",
        labels=MANAGED,
    )(child_changed)
