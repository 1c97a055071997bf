"""Which model version the pods actually serve: asked of the model servers themselves
(TF Serving's GET /v1/models/{name}), only when the set of ready pods changes.

With spec.server.tls the servers answer this on their plain-HTTP health port: model status only,
never inference, so the operator needs neither the CA nor a client certificate."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

from ..resources.names import REST_PORT
from .status import pod_ready

Fetch = Callable[[str, float], dict[str, Any]]
MAX_PODS_ASKED = 5


def http_get_json(url: str, timeout: float) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def available_versions(model_status: dict[str, Any]) -> set[int]:
    return {
        int(entry["version"])
        for entry in model_status.get("model_version_status", [])
        if entry.get("state") == "AVAILABLE" and str(entry.get("version", "")).isdigit()
    }


def _ready_endpoints(pods: list[dict[str, Any]]) -> tuple[str, ...]:
    ips = []
    for pod in pods:
        status = pod.get("status", {})
        if pod_ready(pod) and status.get("podIP"):
            ips.append(status["podIP"])
    return tuple(sorted(ips))


class VersionProber:
    """Caches per ModelDeployment by the ready pods' addresses, so a settled object is never
    asked twice; an unreachable server leaves the version unknown rather than guessed."""

    def __init__(
        self, fetch: Fetch = http_get_json, timeout: float = 1.0, port: int = REST_PORT
    ) -> None:
        self._fetch = fetch
        self._timeout = timeout
        self._port = port
        self._cache: dict[tuple[str, str], tuple[tuple[str, ...], str | None]] = {}
        self._lock = threading.Lock()

    def served_version(
        self,
        key: tuple[str, str],
        model: str,
        pods: list[dict[str, Any]],
        port: int | None = None,
    ) -> str | None:
        endpoints = _ready_endpoints(pods)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] == endpoints:
            return cached[1]
        versions: set[int] = set()
        port = port or self._port
        for ip in endpoints[:MAX_PODS_ASKED]:
            host = f"[{ip}]" if ":" in ip else ip
            try:
                status = self._fetch(f"http://{host}:{port}/v1/models/{model}", self._timeout)
            except (OSError, ValueError):
                continue
            versions |= available_versions(status)
        # Several versions while a rollout or a version policy serves more than one.
        result = ",".join(str(v) for v in sorted(versions)) or None
        with self._lock:
            self._cache[key] = (endpoints, result)
        return result

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._cache.pop(key, None)
