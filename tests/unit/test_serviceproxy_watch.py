"""The service proxy's list-and-watch loop against a scripted list call (the shape of the
kubernetes client's raw responses): resuming, bookmarks, 410 Gone both ways, and failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException
from modelship_localcluster.serviceproxy.kube_watch import KindWatcher


class Raw:
    """A raw (not preloaded) response: a list body, or a watch stream in uneven chunks."""

    def __init__(self, data: bytes = b"", chunks: list[bytes] | None = None) -> None:
        self.data = data
        self.chunks = chunks or []
        self.closed = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def obj(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


def page(items: list[dict[str, Any]], version: str, token: str | None = None) -> Raw:
    meta: dict[str, Any] = {"resourceVersion": version}
    if token:
        meta["continue"] = token
    return Raw(json.dumps({"items": items, "metadata": meta}).encode())


def events(*pairs: tuple[str, dict[str, Any]]) -> Raw:
    text = b"".join(json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in pairs)
    # Lines split across chunks, as a chunked HTTP stream delivers them.
    return Raw(chunks=[text[i : i + 7] for i in range(0, len(text), 7)])


def test_lists_pages_resumes_after_bookmarks_and_relists_on_gone_and_failure() -> None:
    stop = threading.Event()
    calls: list[dict[str, Any]] = []
    lists: list[list[str]] = []
    seen: list[tuple[str, str]] = []
    a, b, c = obj("a", "5"), obj("b", "11"), obj("c", "21")
    streams: list[Raw] = []

    def script() -> Iterator[Any]:
        yield page([a], "10", token="more")  # a list in two pages
        yield page([b], "10")
        streams.append(events(("ADDED", b), ("BOOKMARK", {"metadata": {"resourceVersion": "15"}})))
        yield streams[-1]  # ends as a server-side timeout does
        yield ApiException(status=410, reason="Gone")  # the watch request itself is refused
        yield page([b], "20")
        streams.append(events(("MODIFIED", c), ("ERROR", {"code": 410, "message": "too old"})))
        yield streams[-1]
        yield ConnectionError("apiserver away")
        yield page([c], "30")
        stop.set()
        yield events()

    steps = script()

    def list_call(**kwargs: Any) -> Any:
        calls.append(kwargs)
        step = next(steps)
        if isinstance(step, Exception):
            raise step
        return step

    watcher = KindWatcher(
        "things",
        list_call,
        on_list=lambda items: lists.append([i["metadata"]["name"] for i in items]),
        on_event=lambda kind, o: seen.append((kind, o["metadata"]["name"])),
        stop=stop,
        first_backoff=0.01,
    )
    watcher.run()

    assert lists == [["a", "b"], ["b"], ["c"]]
    assert seen == [("ADDED", "b"), ("MODIFIED", "c")]
    assert [c.get("_continue") for c in calls[:2]] == [None, "more"]
    watch_versions = [c["resource_version"] for c in calls if c.get("watch")]
    assert watch_versions == ["10", "15", "20", "30"]
    assert all(c["allow_watch_bookmarks"] for c in calls if c.get("watch"))
    assert all(stream.closed for stream in streams)
