"""Worker processes' metrics, summed: each writes a snapshot file, the one scraped reads them.

A scrape reaches one worker (the kernel picks it); that worker renders its own live values plus
the others' latest snapshots, at most `interval` seconds old. Counters stay monotonic because
each worker's own are; a worker that died has its file removed by the supervisor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path

from ..core.metrics import Registry, Snapshot

log = logging.getLogger(__name__)


class MetricsShare:
    def __init__(self, registry: Registry, folder: str, index: int, interval: float = 1.0) -> None:
        self._registry = registry
        self._folder = Path(folder)
        self._index = index
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-share", daemon=True)

    def _path(self, index: int) -> Path:
        return self._folder / f"metrics-{index}.json"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.publish()  # the last counts, for the scrapes that come before this worker exits

    def publish(self) -> None:
        path = self._path(self._index)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(json.dumps(self._registry.snapshot()).encode())
            os.replace(tmp, path)
        except OSError as exc:  # the folder went away: the supervisor is gone or going
            log.debug("metrics not shared: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.publish()

    def peers(self) -> list[Snapshot]:
        """The other workers' latest snapshots (a half-written or vanished one is skipped)."""
        snapshots = []
        for path in self._folder.glob("metrics-*.json"):
            if path == self._path(self._index):
                continue
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_bytes())
                if isinstance(data, dict):
                    snapshots.append(data)
        return snapshots

    def render(self) -> bytes:
        return self._registry.render(self.peers())
