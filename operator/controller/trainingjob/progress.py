"""Training progress as the exporting task reports it: Prometheus text from its metrics endpoint
while it runs, and a JSON termination message once it has finished. Training pods get no
Kubernetes API rights; the operator reads what they publish."""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "modelship_training_"
_GAUGES = {"step": "step", "total_steps": "totalSteps", "epoch": "epoch", "loss": "loss"}
MAX_METRICS = 16  # status stays small whatever a model logs


@dataclass(frozen=True)
class Report:
    """What one read of the exporting task gave."""

    progress: dict[str, Any] = field(default_factory=dict)
    exported_model_uri: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """The status.progress shape from a report's numbers, with percent derived; anything not a
    finite number is dropped rather than trusted."""
    progress: dict[str, Any] = {}
    for key in ("step", "totalSteps", "epoch"):
        number = _number(raw.get(key))
        if number is not None and number >= 0:
            progress[key] = int(number)
    loss = _number(raw.get("loss"))
    if loss is not None:
        progress["loss"] = round(loss, 6)
    metrics = raw.get("metrics")
    if isinstance(metrics, dict):
        kept = {
            str(name)[:63]: round(number, 6)
            for name in list(metrics)[:MAX_METRICS]
            if (number := _number(metrics[name])) is not None
        }
        if kept:
            progress["metrics"] = kept
    step, total = progress.get("step"), progress.get("totalSteps")
    if step is not None and total:
        progress["percent"] = min(100, step * 100 // total)
    return progress


def from_metrics_text(text: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(PREFIX):
            continue
        name = family.name[len(PREFIX) :]
        for sample in family.samples:
            if name in _GAUGES and not sample.labels:
                raw[_GAUGES[name]] = sample.value
            elif name == "metric" and "name" in sample.labels:
                metrics[sample.labels["name"]] = sample.value
    if metrics:
        raw["metrics"] = metrics
    return normalise(raw)


def from_termination_message(message: str) -> Report:
    """`{"exportedModelUri": ..., "progress": {...}}`; anything else is no report."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return Report()
    if not isinstance(parsed, dict):
        return Report()
    uri = parsed.get("exportedModelUri")
    raw = parsed.get("progress")
    return Report(
        progress=normalise(raw) if isinstance(raw, dict) else {},
        exported_model_uri=uri if isinstance(uri, str) and uri else None,
    )


Fetch = Callable[[str, float], str]


def http_get_text(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read(1 << 20).decode("utf-8", "replace"))


class ProgressProber:
    """Asks a running exporter for its progress; an unreachable one, or one that has counted
    nothing yet, leaves progress as it was."""

    def __init__(self, fetch: Fetch = http_get_text, timeout: float = 1.0) -> None:
        self._fetch = fetch
        self._timeout = timeout

    def read(self, pod_ip: str, port: int) -> dict[str, Any] | None:
        host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
        try:
            text = self._fetch(f"http://{host}:{port}/metrics", self._timeout)
            progress = from_metrics_text(text)
        except (OSError, ValueError):
            return None
        # A trainer serves its gauges before it counts: a restarted exporter reads 0 of 0 steps
        # until it has restored its checkpoint, and would show a resumed job back at step 0.
        if not progress.get("step") and not progress.get("totalSteps"):
            return None
        return progress
