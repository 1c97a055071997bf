"""Watch wiring only. kopf watches our own kinds (its handlers queue the object with its kind's
controller); informer.py watches what we own, children and pods, into caches by owner. Children
are routed by their controller ownerReference, pods (whose controller is a ReplicaSet or a Job)
by their owner label. All decisions live in controller/; all writes in kube.py."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from .api.crds import GROUP, VERSION
from .controller.base import KindController
from .controller.queue import LANES
from .controller.runtime import CONTROLLER, TRAINING_JOBS
from .controller.trainingjob.controller import TRAINING_JOB_CONTROLLER
from .informer import Collection, Informers, Keep, OwnerKey
from .kube import load_client_config
from .leader import LEADER, FencedKubeApi, LeaderElector, LeaseClient, make_identity
from .resources.kinds import CHILDREN, ChildKind
from .resources.names import MANAGED_BY, OWNER_LABEL
from .resources.trainingjob.names import OWNER_LABEL as TRAINING_OWNER_LABEL
from .settings import SETTINGS

# Every kind of ours, by kind, and the label its pods carry naming their owner.
CONTROLLERS: dict[str, KindController] = {
    CONTROLLER.kind: CONTROLLER,
    TRAINING_JOB_CONTROLLER.kind: TRAINING_JOB_CONTROLLER,
}
POD_OWNER_LABELS = {
    OWNER_LABEL: CONTROLLER.kind,
    TRAINING_OWNER_LABEL: TRAINING_JOB_CONTROLLER.kind,
}

MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
PODS = ChildKind("Pod", "", "v1", "pods")  # watched for status, never written
INFORMERS = Informers()
# What controllers read: kopf's indexes of our kinds and the informers' caches, by name.
CACHES: dict[str, Any] = {}

# Who this process is, in the Lease and in the user agent of every request it sends.
IDENTITY = make_identity()
USER_AGENT = f"modelship-operator/{IDENTITY}"
# How long a leader handing over waits for its in-flight writes before it releases the Lease.
DRAIN_SECONDS = 1.0


@dataclass
class Election:
    api: FencedKubeApi | None = None
    elector: LeaderElector | None = None
    task: asyncio.Task[None] | None = None


ELECTION = Election()


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a diff base (a deep copy of the body) from every watch event, for handlers
    that react to field changes (on.create / on.update / on.field). We have none: every event
    only refreshes a cache and queues a key, so that copy was a fifth of the operator's CPU in
    a burst of creations (BENCHMARKS.md, operator scale)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own events, only the ones users need
    settings.persistence.finalizer = f"{GROUP}/finalizer"  # none is set: no deletion handlers
    settings.persistence.diffbase_storage = NoDiffBase()
    watched = collections(SETTINGS.namespaces)
    watch_client = load_client_config(pool_size=len(watched) + 1)  # a connection per stream
    watch_client.user_agent = USER_AGENT
    INFORMERS.start(watch_client, watched, _route)
    CACHES.update(INFORMERS.caches)
    # Every kind's workers may be writing at once, plus the autoscaler's thread.
    api_client = load_client_config(pool_size=len(CONTROLLERS) * len(LANES) * SETTINGS.workers + 4)
    api_client.user_agent = USER_AGENT  # the audit log tells which process wrote
    api = FencedKubeApi(api_client)
    ELECTION.api = api

    async def start_controllers() -> None:
        await INFORMERS.synced()
        await TRAINING_JOB_CONTROLLER.start(api, SETTINGS.workers, SETTINGS.resync_seconds)
        await CONTROLLER.start(
            api,
            SETTINGS.workers,
            SETTINGS.resync_seconds,
            SETTINGS.version_timeout,
            SETTINGS.prometheus,
            SETTINGS.autoscale_tick_seconds,
            create_limits={"Service": SETTINGS.service_creates},
        )
        # A new leader looks at everything its warm caches hold, not only at what changes.
        for controller in CONTROLLERS.values():
            known = controller.keys()
            for key in known:
                controller.queue.add(key)

    if not SETTINGS.leader_elect:
        LEADER.set(1)  # the only operator: it writes
        await start_controllers()
        return
    # Its own connection pool: a renewal never waits behind reconciles.
    lease_client = load_client_config()
    lease_client.user_agent = USER_AGENT
    elector = LeaderElector(
        LeaseClient(lease_client, SETTINGS.leader_election_namespace, SETTINGS.leader_election_id),
        IDENTITY,
        on_started=start_controllers,
        on_lost=_lost_leadership,
    )
    ELECTION.elector = elector
    ELECTION.task = asyncio.create_task(elector.run())


def _lost_leadership() -> None:
    """client-go's answer to a lost Lease: stop at once (writes in flight die with the
    process); the pod restarts as a standby."""
    if ELECTION.api is not None:
        ELECTION.api.close()
    logging.shutdown()
    os._exit(1)


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    """Stop writing, let the last requests land, then release the Lease: a standby takes over
    at its next read (about a second) instead of after the lease expires."""
    if ELECTION.api is not None:
        ELECTION.api.close()
    INFORMERS.stop()
    for controller in CONTROLLERS.values():
        await controller.stop()
    if ELECTION.api is not None:
        await asyncio.to_thread(ELECTION.api.wait_idle, DRAIN_SECONDS)
    if ELECTION.elector is not None:
        await ELECTION.elector.release()
    if ELECTION.task is not None:
        ELECTION.task.cancel()
        await asyncio.gather(ELECTION.task, return_exceptions=True)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A copy without managedFields, which are never read."""
    obj = dict(body)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return copy.deepcopy(obj)


def controller_owner(obj: Mapping[str, Any]) -> OwnerKey | None:
    """(kind, namespace, name) of the object of ours that controls this child, if one does."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    for ref in meta.get("ownerReferences") or ():
        if (
            ref.get("controller")
            and ref.get("apiVersion") == f"{GROUP}/{VERSION}"
            and ref.get("kind") in CONTROLLERS
            and namespace
        ):
            return (ref["kind"], namespace, ref["name"])
    return None


def pod_owner(obj: Mapping[str, Any]) -> OwnerKey | None:
    meta = obj.get("metadata", {})
    labels = meta.get("labels") or {}
    for label, kind in POD_OWNER_LABELS.items():
        owner = labels.get(label)
        if owner and meta.get("namespace"):
            return (kind, meta["namespace"], owner)
    return None


def keep_child(obj: dict[str, Any]) -> tuple[OwnerKey, dict[str, Any]] | None:
    """A child by its controller owner, without managedFields (often half of its body)."""
    owner = controller_owner(obj)
    if owner is None:
        return None
    obj["metadata"].pop("managedFields", None)
    return owner, obj


# The one pod annotation status needs: which index of an Indexed Job a training pod is.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def keep_pod(obj: dict[str, Any]) -> tuple[OwnerKey, dict[str, Any]] | None:
    """Only what status needs: pods are many and change often."""
    owner = pod_owner(obj)
    if owner is None:
        return None
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    status = obj.get("status") or {}
    summary = {
        "metadata": {
            **{k: meta.get(k) for k in ("name", "creationTimestamp")},
            "labels": dict(meta.get("labels") or {}),
            "annotations": {k: v for k, v in annotations.items() if k == COMPLETION_INDEX},
        },
        "status": {
            k: status[k]
            for k in ("phase", "podIP", "conditions", "initContainerStatuses", "containerStatuses")
            if status.get(k) is not None
        },
    }
    return owner, summary


def collections(namespaces: list[str]) -> list[tuple[Collection, Keep]]:
    """Every child kind and our pods, cluster-wide or in each watched namespace."""
    watched: list[tuple[ChildKind, Keep]] = [(child, keep_child) for child in CHILDREN]
    watched.append((PODS, keep_pod))
    scopes: list[str | None] = [*namespaces] or [None]
    return [
        (
            Collection(
                name=kind.index,
                api_version=kind.api_version,
                kind=kind.kind,
                path=f"{kind.api_prefix}/namespaces/{namespace}/{kind.plural}"
                if namespace
                else f"{kind.api_prefix}/{kind.plural}",
                label_selector=MANAGED_SELECTOR,
                namespace=namespace,
            ),
            keep,
        )
        for kind, keep in watched
        for namespace in scopes
    ]


@kopf.index(GROUP, VERSION, "modeldeployments")
async def modeldeployments(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): _plain(body)}


@kopf.index(GROUP, VERSION, TRAINING_JOBS)
async def trainingjobs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): _plain(body)}


def _refresh_all(kopf_kwargs: Mapping[str, Any]) -> None:
    """Every controller sees the same caches (a ModelDeployment reads its TrainingJob)."""
    for index in (CONTROLLER.plural, TRAINING_JOB_CONTROLLER.plural):
        if index in kopf_kwargs:
            CACHES[index] = kopf_kwargs[index]
    for controller in CONTROLLERS.values():
        controller.refresh(CACHES)


def unobserved(body: kopf.Body) -> bool:
    """A new object or a spec change the operator has not acted on yet."""
    observed = (body.get("status") or {}).get("observedGeneration")
    return bool(observed != body.get("metadata", {}).get("generation"))


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def modeldeployment_changed(
    namespace: str | None, name: str, body: kopf.Body, **kwargs: Any
) -> None:
    _refresh_all(kwargs)
    CONTROLLER.notify((namespace or "", name), CACHES, new=unobserved(body))


@kopf.on.event(GROUP, VERSION, TRAINING_JOBS)
async def trainingjob_changed(
    namespace: str | None, name: str, body: kopf.Body, **kwargs: Any
) -> None:
    _refresh_all(kwargs)
    TRAINING_JOB_CONTROLLER.notify((namespace or "", name), CACHES, new=unobserved(body))
    CONTROLLER.training_job_changed((namespace or "", name))


def _route(owner: OwnerKey) -> None:
    """A child or pod of `owner` changed (informer.py, on the loop)."""
    kind, namespace, name = owner
    CONTROLLERS[kind].notify((namespace, name), CACHES)
