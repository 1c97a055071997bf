"""The informer's list-and-watch protocol against a scripted apiserver: re-watching from the last
resourceVersion (bookmarks included), relisting on 410 and noticing what went away meanwhile, and
a collection that is not served yet. The real apiserver path runs in every operator integration
test (children and pods are only watched this way)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client
from modelship_operator import informer
from modelship_operator.informer import Collection, Informers, OwnerCache, OwnerKey

pytestmark = pytest.mark.unit

OWNER_X: OwnerKey = ("ModelDeployment", "ns", "x")
OWNER_Y: OwnerKey = ("ModelDeployment", "ns", "y")


def _obj(uid: str, owner: str, version: str, image: str = "a") -> dict[str, Any]:
    return {
        "metadata": {
            "uid": uid,
            "name": uid,
            "namespace": "ns",
            "resourceVersion": version,
            "labels": {"owner": owner},
            "managedFields": [{"manager": "x"}],
        },
        "spec": {"image": image},
    }


def _keep(obj: dict[str, Any]) -> tuple[OwnerKey, dict[str, Any]] | None:
    meta = obj["metadata"]
    owner = meta["labels"].get("owner")
    return (("ModelDeployment", meta["namespace"], owner), obj) if owner else None


class Script:
    """Responses in order: ("list", status, body) or ("watch", [events])."""

    def __init__(self, steps: list[tuple[Any, ...]]) -> None:
        self.steps = list(steps)
        self.seen: list[dict[str, list[str]]] = []
        self.done = threading.Event()


def _server(script: Script) -> Iterator[ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            script.seen.append(query)
            watching = query.get("watch") == ["true"]
            if not script.steps:  # script over: a watch that stays open, as a quiet one does
                script.done.set()
                time.sleep(2)
                self.send_response(200)
                self.end_headers()
                return
            step = script.steps.pop(0)
            assert (step[0] == "watch") == watching, (step, query)
            if step[0] == "list":
                _, status, body = step
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())
                return
            self.send_response(200)
            self.end_headers()
            for event in step[1]:
                self.wfile.write(json.dumps(event).encode() + b"\n")
                self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()


def _run(script: Script, check: Any, timeout: float = 10) -> list[OwnerKey]:
    """Runs one informer until the script is over and `check(cache)` holds; returns the owners
    it reported changed, in order."""
    changed: list[OwnerKey] = []
    server_gen = _server(script)
    server = next(server_gen)
    port = server.server_address[1]

    async def main() -> OwnerCache:
        informers = Informers()
        api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
        collection = Collection("things", "v1", "Thing", "/api/v1/things", "app=x")
        informers.start(api, [(collection, _keep)], changed.append)
        await asyncio.wait_for(informers.synced(), timeout)
        began = time.monotonic()
        cache = informers.caches["things"]
        while not (script.done.is_set() and check(cache)):
            assert time.monotonic() - began < timeout, (script.seen, dict(cache))
            await asyncio.sleep(0.02)
        informers.stop()
        return cache

    try:
        asyncio.run(main())
    finally:
        next(server_gen, None)
    return changed


def _listing(version: str, *items: dict[str, Any]) -> tuple[Any, ...]:
    return ("list", 200, {"metadata": {"resourceVersion": version}, "items": list(items)})


def test_rewatches_from_the_last_version_and_relists_on_410_dropping_what_went_away() -> None:
    script = Script(
        [
            _listing("10", _obj("a", "x", "9"), _obj("b", "y", "8")),
            (
                "watch",
                [
                    {"type": "MODIFIED", "object": _obj("a", "x", "11", image="new")},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
                ],
            ),
            ("watch", [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}]),
            _listing("20", _obj("a", "x", "11", image="new")),  # b was deleted meanwhile
            ("watch", [{"type": "DELETED", "object": _obj("a", "x", "21", image="new")}]),
        ]
    )
    changed = _run(script, lambda cache: len(cache) == 0)

    lists = [q for q in script.seen if "watch" not in q]
    watches = [q["resourceVersion"] for q in script.seen if "watch" in q]
    assert len(lists) == 2
    assert all(q["labelSelector"] == ["app=x"] for q in script.seen)
    # From the list's version, then the bookmark's, then the relist's.
    assert watches[:3] == [["10"], ["12"], ["20"]]
    assert all(q["allowWatchBookmarks"] == ["true"] for q in script.seen if "watch" in q)
    # Both owners at the first list; x for its change; y when the relist shows b gone; x for
    # the relist and for its deletion.
    assert changed[:2] in ([OWNER_X, OWNER_Y], [OWNER_Y, OWNER_X])
    assert changed[2] == OWNER_X
    assert OWNER_Y in changed[3:]
    assert changed[-1] == OWNER_X


def test_cached_objects_are_typed_and_updated_in_place() -> None:
    script = Script(
        [
            _listing("10", _obj("a", "x", "9")),
            ("watch", [{"type": "MODIFIED", "object": _obj("a", "x", "11", image="new")}]),
        ]
    )
    got: dict[str, Any] = {}

    def check(cache: OwnerCache) -> bool:
        got.update(cache.get(OWNER_X, ({},))[0])
        return bool(got.get("spec", {}).get("image") == "new")

    _run(script, check)
    assert (got["apiVersion"], got["kind"]) == ("v1", "Thing")


def test_a_collection_not_served_yet_is_empty_then_listed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(informer, "ABSENT_RETRY_SECONDS", 0.05)
    script = Script(
        [
            ("list", 404, {"kind": "Status", "code": 404}),
            _listing("5", _obj("a", "x", "4")),
        ]
    )
    changed = _run(script, lambda cache: OWNER_X in cache)
    assert changed == [OWNER_X]


def test_an_error_backs_off_and_lists_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer, "MAX_BACKOFF_SECONDS", 0.05)
    script = Script(
        [
            ("list", 500, {"kind": "Status", "code": 500}),
            _listing("5", _obj("a", "x", "4")),
        ]
    )
    _run(script, lambda cache: OWNER_X in cache)


def test_a_relist_of_one_namespace_leaves_the_others() -> None:
    cache = OwnerCache(_keep)
    other = _obj("o", "z", "1")
    other["metadata"]["namespace"] = "elsewhere"
    cache.put(other)
    cache.put(_obj("a", "x", "1"))
    touched = cache.replace([], "ns")
    assert touched == {OWNER_X}
    assert list(cache) == [("ModelDeployment", "elsewhere", "z")]


def test_a_malformed_event_is_skipped_and_a_crash_relists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(informer, "MAX_BACKOFF_SECONDS", 0.05)
    no_uid = {"metadata": {"resourceVersion": "2"}}
    script = Script(
        [
            _listing("1"),
            # The object without a uid is skipped; the one after it in the batch still lands.
            ("watch", [{"type": "MODIFIED", "object": no_uid}, _event("ADDED", "c", "z", "3")]),
            # A line that is not an event: the watch is dropped, and everything listed again.
            ("watch", [_event("ADDED", "a", "x", "5"), [1, 2]]),
            _listing("10", _obj("a", "x", "5"), _obj("b", "y", "6")),
        ]
    )
    changed = _run(script, lambda cache: OWNER_X in cache and OWNER_Y in cache)
    lists = [q for q in script.seen if "watch" not in q]
    assert len(lists) == 2  # the malformed object alone did not end the watch; the crash did
    owner_z = ("ModelDeployment", "ns", "z")
    assert changed.count(owner_z) == 2  # added from the first watch, gone at the relist


def _event(kind: str, uid: str, owner: str, version: str) -> dict[str, Any]:
    return {"type": kind, "object": _obj(uid, owner, version)}
