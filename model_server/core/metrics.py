"""A small Prometheus registry that keeps TF Serving's metric names exactly.

prometheus_client appends `_total` to counters, which would rename
`:tensorflow:serving:request_count`; dashboards written for TF Serving expect the bare name, so
this module renders the text exposition format itself. Updates take one lock and a dict lookup.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

LabelValues = tuple[str, ...]
# A registry's values in JSON-ready form, for summing the worker processes' metrics:
# metric name -> [[label values, value]] (counters, gauges) or [[label values, counts, sum]].
Snapshot = dict[str, list[list[Any]]]

# Microsecond buckets, like TF Serving's latency histograms.
LATENCY_BUCKETS_US: tuple[float, ...] = tuple(
    float(10 * 1.8**i) for i in range(33)
)  # 10us .. ~2.3e9us
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name = name
        self.doc = doc
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def snapshot(self) -> list[list[Any]]:
        raise NotImplementedError

    def render(self, peers: Iterable[list[list[Any]]] = ()) -> list[str]:
        """Exposition lines for this process's values plus the peers' snapshots, summed."""
        raise NotImplementedError


class _Scalar(_Metric):
    # How worker processes' values combine: summed (requests, rows waiting), or the largest
    # (a state every worker has on its own, such as how many versions it serves).
    combine: Callable[[float, float], float] = staticmethod(float.__add__)

    def collect(self) -> dict[LabelValues, float]:
        raise NotImplementedError

    def snapshot(self) -> list[list[Any]]:
        return [[list(k), v] for k, v in self.collect().items()]

    def render(self, peers: Iterable[list[list[Any]]] = ()) -> list[str]:
        values = self.collect()
        for peer in peers:
            for labels, value in peer:
                key = tuple(labels)
                values[key] = (
                    self.combine(values[key], float(value)) if key in values else float(value)
                )
        return [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in values.items()]


class Counter(_Scalar):
    kind = "counter"

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        super().__init__(name, doc, labels)
        self._values: dict[LabelValues, float] = {}
        self._zero_keys: Callable[[], Iterable[LabelValues]] | None = None

    def report_zero_for(self, keys: Callable[[], Iterable[LabelValues]]) -> None:
        """Label sets shown at 0 before their first count: a series that appears only with its
        first increments hides them from rate() (Prometheus needs a sample before them)."""
        self._zero_keys = keys

    def inc(self, labels: LabelValues, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, labels: LabelValues) -> float:
        return self._values.get(labels, 0.0)

    def collect(self) -> dict[LabelValues, float]:
        with self._lock:
            values = dict(self._values)
        for key in self._zero_keys() if self._zero_keys else ():
            values.setdefault(key, 0.0)
        return values


class Gauge(_Scalar):
    """A gauge set directly, or read from callbacks at scrape time."""

    kind = "gauge"

    def __init__(
        self, name: str, doc: str, labels: Sequence[str], per_process_state: bool = False
    ) -> None:
        super().__init__(name, doc, labels)
        self._values: dict[LabelValues, float] = {}
        self._callbacks: list[Callable[[], dict[LabelValues, float]]] = []
        if per_process_state:
            self.combine = max

    def add(self, labels: LabelValues, amount: float) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def set(self, labels: LabelValues, value: float) -> None:
        with self._lock:
            self._values[labels] = value

    def value(self, labels: LabelValues) -> float:
        return self.collect().get(labels, 0.0)

    def set_callback(self, callback: Callable[[], dict[LabelValues, float]]) -> None:
        self._callbacks.append(callback)

    def collect(self) -> dict[LabelValues, float]:
        with self._lock:
            values = dict(self._values)
        for callback in self._callbacks:
            for key, value in callback().items():
                values[key] = values.get(key, 0.0) + value
        return values


class ProcessCpuSeconds(_Scalar):
    """User plus system CPU time of this process, read at scrape time (a counter)."""

    kind = "counter"

    def __init__(self) -> None:
        super().__init__(
            "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", []
        )

    def collect(self) -> dict[LabelValues, float]:
        times = os.times()
        return {(): times.user + times.system}


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, doc, labels)
        self.buckets = tuple(sorted(buckets))
        # per label set: [bucket counts..., +Inf count], sum
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, labels: LabelValues, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = ([0] * (len(self.buckets) + 1), [0.0])
            series[0][index] += 1
            series[1][0] += value

    def count(self, labels: LabelValues) -> int:
        series = self._series.get(labels)
        return sum(series[0]) if series else 0

    def snapshot(self) -> list[list[Any]]:
        with self._lock:
            return [[list(k), list(c), s[0]] for k, (c, s) in self._series.items()]

    def render(self, peers: Iterable[list[list[Any]]] = ()) -> list[str]:
        merged: dict[LabelValues, tuple[list[int], float]] = {}
        for series in (self.snapshot(), *peers):
            for labels, counts, total in series:
                key = tuple(labels)
                if key not in merged:
                    merged[key] = ([0] * (len(self.buckets) + 1), 0.0)
                if len(counts) != len(merged[key][0]):
                    continue  # another build's buckets: cannot be summed
                summed = [a + int(b) for a, b in zip(merged[key][0], counts, strict=True)]
                merged[key] = (summed, merged[key][1] + float(total))
        lines = []
        for key, (counts, total) in merged.items():
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = f'le="{_num(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {running}")
        return lines


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def register(self, metric: _Metric) -> None:
        self._metrics.append(metric)

    def snapshot(self) -> Snapshot:
        return {metric.name: metric.snapshot() for metric in self._metrics}

    def render(self, peers: Sequence[Snapshot] = ()) -> bytes:
        """The text exposition format; peers (other worker processes) are added in."""
        lines: list[str] = []
        for metric in self._metrics:
            lines.append(f"# HELP {metric.name} {metric.doc}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.render([p[metric.name] for p in peers if metric.name in p]))
        return ("\n".join(lines) + "\n").encode()


class ServerMetrics:
    """Every metric the server exports, by TF Serving's names where TF Serving has one."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.request_count = Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "status"],
        )
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of the latency of inference requests in microseconds.",
            ["model_name", "API", "entrypoint"],
            LATENCY_BUCKETS_US,
        )
        self.queuing_latency = Histogram(
            ":tensorflow:serving:batching_session:queuing_latency",
            "Distribution of the time a task spent in the batch queue, in microseconds.",
            ["thread_pool_name"],
            LATENCY_BUCKETS_US,
        )
        self.input_batch_size = Histogram(
            ":tensorflow:serving:batching_session:input_batch_size",
            "Distribution of the rows in each batch before padding.",
            ["thread_pool_name"],
            BATCH_SIZE_BUCKETS,
        )
        self.processed_batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Distribution of the batch sizes run, after padding.",
            ["thread_pool_name"],
            BATCH_SIZE_BUCKETS,
        )
        self.padding_size = Histogram(
            ":tensorflow:serving:batching_session:padding_size",
            "Distribution of padded rows per batch.",
            ["thread_pool_name"],
            BATCH_SIZE_BUCKETS,
        )
        self.inflight = Gauge(
            "modelship_server_inflight_requests",
            "Inference requests accepted and not yet answered, per model.",
            ["model_name"],
        )
        self.queue_depth = Gauge(
            "modelship_server_queue_depth",
            "Rows waiting in the batch queues, per model.",
            ["model_name"],
        )
        self.model_versions = Gauge(
            "modelship_server_model_versions_available",
            "AVAILABLE versions per model.",
            ["model_name"],
            per_process_state=True,
        )
        # The autoscaler's cpuUtilization; summed over --workers processes like the counters.
        self.process_cpu = ProcessCpuSeconds()
        for metric in (
            self.request_count,
            self.request_latency,
            self.queuing_latency,
            self.input_batch_size,
            self.processed_batch_size,
            self.padding_size,
            self.inflight,
            self.queue_depth,
            self.model_versions,
            self.process_cpu,
        ):
            self.registry.register(metric)
