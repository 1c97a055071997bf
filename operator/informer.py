"""List-and-watch caches for what the operator owns (its children and their pods), by owner.

kopf's machinery costs about a millisecond per watch event (causes, handler registries, progress
state, an index handler and an event handler each), and children and pods bring several events
per object: in a burst of 500 new ModelDeployments it was most of the operator's CPU. These
caches need none of it. A thread per watched collection lists, then watches from the list's
resourceVersion, decodes each event and hands it to the event loop, where the cache changes and
the owner is queued: the same thread that snapshots the caches, so a reconcile never sees one
half-written.

kopf still watches our own kinds (ModelDeployment, TrainingJob), where its handlers are used."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

OwnerKey = tuple[str, str, str]  # (owner kind, namespace, owner name)
# What a watched object becomes in its cache: its owner and what is kept of it, or None (not ours).
Keep = Callable[[dict[str, Any]], tuple[OwnerKey, dict[str, Any]] | None]
Changed = Callable[[OwnerKey], None]

LIST_PAGE = 500
# The apiserver ends a watch after this long (client-go picks 5-10 minutes); we watch again from
# the last resourceVersion seen, so nothing is missed.
WATCH_SECONDS = 300
REQUEST_TIMEOUT = 60.0
# A collection the apiserver does not serve (a CRD from another project, not installed yet) is
# listed again this often: a CRD installed later is picked up within this time.
ABSENT_RETRY_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class Collection:
    """One watched collection: an API path and a label selector, read into one cache."""

    name: str  # the cache's name, as controllers look it up
    api_version: str
    kind: str
    path: str  # e.g. /apis/apps/v1/deployments or /apis/apps/v1/namespaces/ns/deployments
    label_selector: str
    namespace: str | None = None  # None: every namespace


class ResourceVersionGoneError(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class OwnerCache(Mapping[OwnerKey, tuple[dict[str, Any], ...]]):
    """What one collection holds, by owner. Changed only on the event loop."""

    def __init__(self, keep: Keep) -> None:
        self._keep = keep
        self._by_owner: dict[OwnerKey, dict[str, dict[str, Any]]] = {}
        self._owner_of: dict[str, OwnerKey] = {}  # uid → owner

    def __getitem__(self, owner: OwnerKey) -> tuple[dict[str, Any], ...]:
        return tuple(self._by_owner[owner].values())

    def __iter__(self) -> Iterator[OwnerKey]:
        return iter(self._by_owner)

    def __len__(self) -> int:
        return len(self._by_owner)

    def put(self, obj: dict[str, Any]) -> set[OwnerKey]:
        """Add or replace one object; returns the owners whose children changed."""
        uid = obj["metadata"]["uid"]
        touched = self.remove(uid)
        kept = self._keep(obj)
        if kept is not None:
            owner, value = kept
            self._by_owner.setdefault(owner, {})[uid] = value
            self._owner_of[uid] = owner
            touched.add(owner)
        return touched

    def remove(self, uid: str) -> set[OwnerKey]:
        owner = self._owner_of.pop(uid, None)
        if owner is None:
            return set()
        siblings = self._by_owner.get(owner, {})
        siblings.pop(uid, None)
        if not siblings:
            self._by_owner.pop(owner, None)
        return {owner}

    def replace(self, objs: list[dict[str, Any]], namespace: str | None) -> set[OwnerKey]:
        """A fresh list of one namespace (None: all): what it lacks there was deleted while
        nobody watched. A child lives in its owner's namespace."""
        listed = {obj["metadata"]["uid"] for obj in objs}
        touched: set[OwnerKey] = set()
        for uid, owner in list(self._owner_of.items()):
            if uid not in listed and namespace in (None, owner[1]):
                touched |= self.remove(uid)
        for obj in objs:
            touched |= self.put(obj)
        return touched


class Informer:
    """Lists and watches one collection in a thread; applies what it reads on the loop."""

    def __init__(
        self,
        api_client: client.ApiClient,
        collection: Collection,
        cache: OwnerCache,
        changed: Changed,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._client = api_client
        self.collection = collection
        self.cache = cache
        self._changed = changed
        self._loop = loop
        self.synced = asyncio.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{collection.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    # ---- on the loop --------------------------------------------------------------------------

    def _apply(self, events: list[tuple[str, Any]]) -> None:
        touched: set[OwnerKey] = set()
        for kind, payload in events:
            try:
                if kind == "LIST":
                    touched |= self.cache.replace(payload, self.collection.namespace)
                    self.synced.set()
                elif kind == "DELETED":
                    touched |= self.cache.remove(payload["metadata"]["uid"])
                else:  # ADDED, MODIFIED
                    touched |= self.cache.put(payload)
            except (KeyError, TypeError, AttributeError):
                # An object without the fields every object has: skipped, the rest applied.
                log.exception("malformed %s event from %s", kind, self.collection.path)
        for owner in touched:
            self._changed(owner)

    def _post(self, events: list[tuple[str, Any]]) -> None:
        if events and not self._stopped.is_set():
            self._loop.call_soon_threadsafe(self._apply, events)

    # ---- in the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                version = self._list()
                failures = 0
                while not self._stopped.is_set():
                    version = self._watch(version)
            except ResourceVersionGoneError:
                continue
            except ApiException as err:
                if err.status == 404:  # not served (yet): an empty cache, and look again later
                    self._post([("LIST", [])])
                    self._stopped.wait(ABSENT_RETRY_SECONDS)
                    continue
                failures += 1
                self._back_off(failures, err)
            except (HTTPError, OSError, ValueError, KeyError) as err:
                failures += 1
                self._back_off(failures, err)
            except Exception as err:  # never let the thread die: the cache would go stale
                log.exception("watch of %s crashed", self.collection.path)
                failures += 1
                self._back_off(failures, err)

    def _back_off(self, failures: int, err: Exception) -> None:
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
        log.warning(
            "watch of %s failed (%s); listing again in %.1fs",
            self.collection.path,
            getattr(err, "reason", None) or err,
            delay,
        )
        self._stopped.wait(delay)

    def _get(self, query: list[tuple[str, str]], timeout: float | tuple[float, float]) -> Any:
        serialized = self._client.param_serialize(
            method="GET",
            resource_path=self.collection.path,
            query_params=[("labelSelector", self.collection.label_selector), *query],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= response.status < 300:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException(http_resp=response)
        return response

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("limit", str(LIST_PAGE))] + ([("continue", token)] if token else [])
            page = json.loads(self._get(query, REQUEST_TIMEOUT).read())
            items += [self._typed(item) for item in page.get("items") or ()]
            token = page.get("metadata", {}).get("continue") or ""
            if not token:
                self._post([("LIST", items)])
                return str(page["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        """One watch request until the apiserver ends it; returns the last resourceVersion."""
        seconds = int(WATCH_SECONDS * random.uniform(1.0, 2.0))
        response = self._get(
            [
                ("watch", "true"),
                ("resourceVersion", version),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", str(seconds)),
            ],
            (REQUEST_TIMEOUT, seconds + REQUEST_TIMEOUT),
        )
        raw = response.response
        pending = b""
        ended = False
        try:
            for chunk in raw.stream(65536, decode_content=True):
                if self._stopped.is_set():
                    break
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                events = []
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise ResourceVersionGoneError()
                        raise ValueError(f"watch error: {obj.get('message')}")
                    version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        events.append((kind, self._typed(obj)))
                self._post(events)
            else:
                ended = True
        finally:
            if not ended:
                raw.close()  # left mid-stream: its connection must not go back to the pool
            raw.release_conn()
        return version

    def _typed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """List items come without apiVersion and kind; readers expect them."""
        obj.setdefault("apiVersion", self.collection.api_version)
        obj.setdefault("kind", self.collection.kind)
        return obj


class Informers:
    """Every collection the operator watches this way, and the caches they fill."""

    def __init__(self) -> None:
        self.caches: dict[str, OwnerCache] = {}
        self._informers: list[Informer] = []

    def start(
        self,
        api_client: client.ApiClient,
        collections: list[tuple[Collection, Keep]],
        changed: Changed,
    ) -> None:
        loop = asyncio.get_running_loop()
        for collection, keep in collections:
            cache = self.caches.setdefault(collection.name, OwnerCache(keep))
            informer = Informer(api_client, collection, cache, changed, loop)
            self._informers.append(informer)
            informer.start()

    async def synced(self) -> None:
        """Until every collection has been listed once: a reconcile before that would miss
        children that exist and apply them again."""
        for informer in self._informers:
            await informer.synced.wait()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()
