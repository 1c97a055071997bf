"""The process groups this node runs, kept in a file so that a later run of the component can
kill what an earlier one left behind (after a crash or SIGKILL)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

from .containers import group_alive, signal_group

STATE_FILE = "processes.json"


class ProcessRecords:
    """pod uid → container name → process group id, saved on every change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, int]] = {}

    def add(self, uid: str, container: str, pgid: int) -> None:
        with self._lock:
            self._groups.setdefault(uid, {})[container] = pgid
            self._save()

    def remove(self, uid: str, container: str) -> None:
        with self._lock:
            self._groups.get(uid, {}).pop(container, None)
            if uid in self._groups and not self._groups[uid]:
                del self._groups[uid]
            self._save()

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._groups, indent=1, sort_keys=True))
        os.replace(tmp, self._path)


def read_leftovers(path: Path) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def kill_leftovers(path: Path, grace: float = 5.0) -> list[int]:
    """SIGTERM every recorded group still alive, SIGKILL it after `grace`; the groups hit."""
    groups = [
        int(pgid)
        for containers in read_leftovers(path).values()
        for pgid in containers.values()
        if isinstance(pgid, int) and pgid > 1 and group_alive(int(pgid))
    ]
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group_alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pgid in groups:
        signal_group(pgid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return groups
