"""List and watch one kind in all namespaces, for ever: a fresh list whenever the watch expires
(410 Gone) or the apiserver cannot be reached, resuming from the last resourceVersion when a
watch just ends. Objects stay plain dicts (deserializing them into models costs much more)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

# A watch request ends on the server after this long; the client gives up a bit later.
WATCH_SECONDS = 240
LIST_PAGE = 500
MAX_BACKOFF = 10.0

Object = dict[str, Any]
ListCall = Callable[..., Any]


class WatchExpiredError(Exception):
    """The resourceVersion is too old (410 Gone): only a fresh list can resume."""


class KindWatcher:
    def __init__(
        self,
        kind: str,
        list_call: ListCall,
        on_list: Callable[[list[Object]], None],
        on_event: Callable[[str, Object], None],
        stop: threading.Event,
        first_backoff: float = 0.5,
    ) -> None:
        self.kind = kind
        self._first_backoff = first_backoff
        self._list_call = list_call
        self._on_list = on_list
        self._on_event = on_event
        self._stop = stop

    def run(self) -> None:
        backoff = self._first_backoff
        while not self._stop.is_set():
            try:
                items, version = self._list()
                self._on_list(items)
                backoff = self._first_backoff
                while not self._stop.is_set():
                    version = self._watch(version)
            except WatchExpiredError:
                log.info("%s watch expired; listing again", self.kind)
            except Exception as err:  # any failure: wait, then list again
                log.warning(
                    "%s watch failed (%s); retrying in %.1fs", self.kind, _brief(err), backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _list(self) -> tuple[list[Object], str]:
        items: list[Object] = []
        token: str | None = None
        while True:
            response = self._list_call(
                limit=LIST_PAGE, _continue=token, _preload_content=False, _request_timeout=60
            )
            page = json.loads(response.data)
            items.extend(page.get("items") or [])
            token = page["metadata"].get("continue")
            if not token:
                return items, str(page["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        """Apply events until the server ends the watch; the version to resume from."""
        try:
            response = self._list_call(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _preload_content=False,
                _request_timeout=(10, WATCH_SECONDS + 30),
            )
        except ApiException as err:
            if err.status == 410:
                raise WatchExpiredError from err
            raise
        try:
            for event in _events(response):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = str(obj["metadata"]["resourceVersion"])
                if kind != "BOOKMARK":
                    self._on_event(kind, obj)
                if self._stop.is_set():
                    break
        finally:
            response.close()
            response.release_conn()
        return version


def _events(response: Any) -> Iterator[Object]:
    """One JSON event per line of the chunked watch response."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.strip():
                event: Object = json.loads(line)
                yield event


def _brief(err: Exception) -> str:
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}"
    return f"{type(err).__name__}: {err}".splitlines()[0][:200]
