"""Watching the pods bound to this component's nodes and giving each one a worker."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Sequence
from typing import Any

from .kube import ApiError
from .pod import NodeRuntime, PodWorker

log = logging.getLogger("processpods")

WATCH_SECONDS = 240
RELIST_PAUSE = 1.0


class Agent:
    def __init__(self, runtime: NodeRuntime, nodes: Sequence[str]) -> None:
        self.rt = runtime
        self.nodes = list(nodes)
        self._workers: dict[str, PodWorker] = {}
        # Pods whose worker finished on purpose (deleted, gone): later events are echoes.
        self._done: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # ---- pods ---------------------------------------------------------------------------------

    def list_pods(self, node: str) -> tuple[list[dict[str, Any]], str]:
        listed = self.rt.kube.get("/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"})
        return listed.get("items") or [], str(listed["metadata"].get("resourceVersion", ""))

    def dispatch(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if self._stopping.is_set() or uid in self._done:
                return
            worker = self._workers.get(uid)
            if worker is not None and worker.finished:
                # A worker ends on its own only after the pod is deleted or gone, or on a bug:
                # in that last case the next event starts the pod's supervision afresh.
                del self._workers[uid]
                if not worker.is_alive() and worker.ended_cleanly:
                    self._done.add(uid)
                    return
                worker = None
            if worker is None:
                worker = PodWorker(self.rt, pod)
                self._workers[uid] = worker
                worker.start()
            else:
                worker.update(pod)

    def vanished(self, uid: str) -> None:
        with self._lock:
            worker = self._workers.get(uid)
        if worker is not None:
            worker.gone()

    def sync(self, node: str, pods: list[dict[str, Any]]) -> None:
        """After a (re)list: start or update the listed pods, stop those no longer there."""
        present = {p["metadata"]["uid"] for p in pods}
        for pod in pods:
            self.dispatch(pod)
        with self._lock:
            lost = [
                w
                for uid, w in self._workers.items()
                if uid not in present and w.node == node and not w.finished
            ]
        for worker in lost:
            worker.gone()

    def watch_node(self, node: str) -> None:
        """List, then watch from the list's resourceVersion; on expiry (410) or any error, list
        again. Runs until stop()."""
        while not self._stopping.is_set():
            try:
                pods, version = self.list_pods(node)
                self.sync(node, pods)
                self._watch(node, version)
            except ApiError as err:
                if err.status != 410:
                    log.warning("node %s: pod watch: %s; listing again", node, err)
                time.sleep(RELIST_PAUSE)
            except Exception:
                log.exception("node %s: pod watch failed; listing again", node)
                time.sleep(RELIST_PAUSE)

    def _watch(self, node: str, version: str) -> None:
        query = {
            "fieldSelector": f"spec.nodeName={node}",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
        }
        for event in self.rt.kube.watch("/api/v1/pods", query, WATCH_SECONDS):
            if self._stopping.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 0), str(obj.get("message")))
            if kind in ("ADDED", "MODIFIED"):
                self.dispatch(obj)
            elif kind == "DELETED":
                self.vanished(obj["metadata"]["uid"])

    # ---- the component ------------------------------------------------------------------------

    def remove_stale_folders(self) -> None:
        """Pod folders of an earlier run whose pods are not bound here any more."""
        keep: set[str] = set()
        for node in self.nodes:
            pods, _ = self.list_pods(node)
            keep.update(p["metadata"]["uid"] for p in pods)
        root = self.rt.workdir / "pods"
        for folder in root.iterdir() if root.exists() else []:
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def start(self) -> None:
        for node in self.nodes:
            threading.Thread(
                target=self.watch_node, args=(node,), name=f"watch {node}", daemon=True
            ).start()

    def stop(self) -> None:
        """Stop every container (SIGTERM, SIGKILL after the shutdown grace), in parallel."""
        self._stopping.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.shutdown()
        deadline = time.monotonic() + self.rt.shutdown_grace + 15
        for worker in workers:
            worker.join(max(0.1, deadline - time.monotonic()))
