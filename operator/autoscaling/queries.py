"""The PromQL the autoscaler runs: one query per metric kind for every ModelDeployment at once.

Model-server pods are scraped with the target labels `namespace`, `pod` and `modeldeployment`
(the last from the pod label modelship.dev/modeldeployment), so each kind's query is grouped
by (namespace, modeldeployment) and one answer covers all objects. Users' own PromQL metrics
are tagged with their object's labels and joined with `or`: one query for all of them too.
A key missing from an answer means "no data" for that object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .decision import ObservationKind
from .prometheus import PrometheusError, QueryError, Sample, shorten

Key = tuple[str, str]  # (namespace, ModelDeployment name)


class Querier(Protocol):
    """What the readers need of a client (PrometheusClient)."""

    def query(self, promql: str) -> list[Sample]: ...


NAMESPACE_LABEL = "namespace"
MODELDEPLOYMENT_LABEL = "modeldeployment"
POD_LABEL = "pod"
BY_OBJECT = f"{NAMESPACE_LABEL}, {MODELDEPLOYMENT_LABEL}"
# Only series of model-server pods: Prometheus' own process_cpu_seconds_total, for one, has none.
_OURS = f'{{{MODELDEPLOYMENT_LABEL}!=""}}'

INFLIGHT = "inflightRequests"
QUEUE_DEPTH = "queueDepth"
REQUESTS_PER_SECOND = "requestsPerSecond"
CPU = "cpuUtilization"
P99_LATENCY = "p99LatencyMs"
PROMQL = "promql"
KINDS = (INFLIGHT, QUEUE_DEPTH, REQUESTS_PER_SECOND, CPU, P99_LATENCY)
# How each kind's value compares with the target: summed over pods with a per-pod target, or a
# whole-deployment figure (see decision.Observation).
OBSERVATION_KIND: dict[str, ObservationKind] = {
    INFLIGHT: "total",
    QUEUE_DEPTH: "total",
    REQUESTS_PER_SECOND: "total",
    CPU: "total",
    P99_LATENCY: "ratio",
    PROMQL: "total",
}
UNIT = {CPU: "%", P99_LATENCY: "ms"}


def _summed(expression: str) -> str:
    return f"sum by ({BY_OBJECT}) ({expression})"


def object_selector(key: Key) -> str:
    """Label matchers for one ModelDeployment's series (a KEDA trigger reads one object)."""
    namespace, name = key
    return f"{{{NAMESPACE_LABEL}={_quoted(namespace)}, {MODELDEPLOYMENT_LABEL}={_quoted(name)}}}"


def kind_query(metric: str, window: str, selector: str = _OURS) -> str:
    """The query for one built-in metric kind; `window` is a PromQL duration such as "10s".
    `selector` narrows it (default: every model-server series, for the one query per kind)."""
    if metric == INFLIGHT:
        return _summed(f"modelship_server_inflight_requests{selector}")
    if metric == QUEUE_DEPTH:
        return _summed(f"modelship_server_queue_depth{selector}")
    if metric == REQUESTS_PER_SECOND:
        return _summed(f"rate(:tensorflow:serving:request_count{selector}[{window}])")
    if metric == CPU:
        # CPU cores in use, summed; the caller divides by the pods' CPU request.
        return _summed(f"rate(process_cpu_seconds_total{selector}[{window}])")
    if metric == P99_LATENCY:
        # Microseconds. With no request in the window the quantile is NaN (dropped), so the
        # `or` arm reads an idle deployment (its servers export in-flight 0) as 0: idle scales
        # down rather than holding for lack of data.
        quantile = (
            f"histogram_quantile(0.99, sum by ({BY_OBJECT}, le)"
            f" (rate(:tensorflow:serving:request_latency_bucket{selector}[{window}])))"
        )
        idle = _summed(f"modelship_server_inflight_requests{selector}") + " * 0"
        return f"({quantile} >= 0) or ({idle})"
    raise ValueError(f"unknown metric kind {metric!r}; known: {', '.join(KINDS)}")


def microseconds_to_ms(value: float) -> float:
    return value / 1000.0


def cores_to_percent(cores: float, cpu_request_cores: float) -> float:
    """CPU in use as a percentage of one pod's CPU request (the cpuUtilization scale)."""
    return 100.0 * cores / cpu_request_cores


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _string_end(query: str, start: int) -> int:
    """Index just past the string literal opening at `start`; -1 if it never closes."""
    quote = query[start]
    i = start + 1
    while i < len(query):
        if query[i] == "\\" and quote != "`":  # raw (backtick) strings have no escapes
            i += 2
            continue
        if query[i] == quote:
            return i + 1
        i += 1
    return -1


def unbalanced(query: str) -> str | None:
    """What keeps `query` from being one self-contained expression, or None.

    A user's query is wrapped in sum(...) and joined with others; brackets left open or
    closed too early would change what the wrapper means, even for other objects' queries.
    """
    expected: list[str] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char in "\"'`":
            end = _string_end(query, i)
            if end < 0:
                return "a string literal is not closed"
            i = end
            continue
        if char == "#":  # a comment runs to the end of the line
            newline = query.find("\n", i)
            i = len(query) if newline < 0 else newline
            continue
        if char in _CLOSING:
            expected.append(_CLOSING[char])
        elif char in ")]}" and (not expected or expected.pop() != char):
            return f"'{char}' closes nothing opened before it"
        i += 1
    if expected:
        return f"{len(expected)} bracket(s) left open (expected '{expected[-1]}')"
    if not query.strip():
        return "the query is empty"
    return None


def tagged(key: Key, query: str) -> str:
    """A user's query summed to one series that carries its object's labels."""
    namespace, name = key
    # On lines of its own, so that a trailing # comment in the query cannot hide the wrapper.
    inner = f"sum(\n{query}\n)"
    inner = f"label_replace({inner}, {_quoted(NAMESPACE_LABEL)}, {_quoted(namespace)}, '', '')"
    return f"label_replace({inner}, {_quoted(MODELDEPLOYMENT_LABEL)}, {_quoted(name)}, '', '')"


def combined_promql(queries: Mapping[Key, str]) -> str:
    """Every user query in one, each answer tagged with its object's labels.

    The queries must have passed `unbalanced` (read_all checks them).
    """
    return " or ".join(f"({tagged(key, q)})" for key, q in sorted(queries.items()))


def split_by_key(samples: Iterable[Sample]) -> dict[Key, float]:
    """Values by (namespace, modeldeployment); samples without both labels are ignored."""
    values: dict[Key, float] = {}
    for labels, value in samples:
        namespace = labels.get(NAMESPACE_LABEL)
        name = labels.get(MODELDEPLOYMENT_LABEL)
        if namespace and name:
            values[(namespace, name)] = value
    return values


def isolate(client: Querier, queries: Mapping[Key, str]) -> tuple[dict[Key, float], dict[Key, str]]:
    """Run each user query alone: the values of the good ones, Prometheus' error for the bad.

    For when the combined query is refused. Each query runs first as the user wrote it, so
    the error is Prometheus' own about their text, then summed and tagged (a scalar, for one,
    passes alone but cannot be summed). PrometheusUnavailable propagates.
    """
    values: dict[Key, float] = {}
    errors: dict[Key, str] = {}
    for key, query in sorted(queries.items()):
        try:
            client.query(query)
        except QueryError as exc:
            errors[key] = f"Prometheus refused the query: {exc.error}; query: {shorten(query)}"
            continue
        try:
            values.update(split_by_key(client.query(tagged(key, query))))
        except QueryError as exc:
            errors[key] = (
                f"the query must return an instant vector to sum per pod: {exc.error};"
                f" query: {shorten(query)}"
            )
    return values, errors


@dataclass
class Readings:
    """One tick's readings: values by kind then object, and errors by kind or object key.

    Unpacks as (values, errors). `failures` holds the same errors as exceptions, so a caller
    can tell PrometheusUnavailable from QueryError; `queries` is how many were sent.
    """

    values: dict[str, dict[Key, float]] = field(default_factory=dict)
    failures: dict[str | Key, PrometheusError] = field(default_factory=dict)
    queries: int = 0

    @property
    def errors(self) -> dict[str | Key, str]:
        return {where: str(exc) for where, exc in self.failures.items()}

    def __iter__(self) -> Iterator[Any]:
        return iter((self.values, self.errors))

    def error_for(self, metric: str, key: Key) -> PrometheusError | None:
        """Why `metric` has no reading for this object this tick, if a query failed."""
        if metric == PROMQL:
            return self.failures.get(key) or self.failures.get(PROMQL)
        return self.failures.get(metric)

    def value_for(self, metric: str, key: Key) -> float | None:
        """The object's reading, or None for "no data"."""
        return self.values.get(metric, {}).get(key)


class _Counted:
    def __init__(self, client: Querier) -> None:
        self.client = client
        self.count = 0

    def query(self, promql: str) -> list[Sample]:
        self.count += 1
        return self.client.query(promql)


def read_all(
    client: Querier,
    kinds_in_use: Iterable[str],
    promql_queries: Mapping[Key, str],
    window: str,
) -> Readings:
    """One query per kind in use, plus one for all user queries (and, only when Prometheus
    refuses that one, one or two per user query to find the bad ones).

    p99LatencyMs values are in milliseconds. Kinds whose query failed are absent from
    `values` and present in `errors`; a bad user query is reported under its object's key.
    """
    counted = _Counted(client)
    readings = Readings()
    values, failures = readings.values, readings.failures
    for kind in sorted(set(kinds_in_use) - {PROMQL}):
        try:
            by_key = split_by_key(counted.query(kind_query(kind, window)))
        except PrometheusError as exc:
            failures[kind] = exc
            continue
        if kind == P99_LATENCY:
            by_key = {key: microseconds_to_ms(v) for key, v in by_key.items()}
        values[kind] = by_key
    runnable: dict[Key, str] = {}
    for key, query in promql_queries.items():
        problem = unbalanced(query)
        if problem:
            message = f"the query is not a complete expression: {problem}; query: {shorten(query)}"
            failures[key] = QueryError(message, query=query, error=problem, error_type="bad_data")
        else:
            runnable[key] = query
    if runnable:
        try:
            try:
                values[PROMQL] = split_by_key(counted.query(combined_promql(runnable)))
            except QueryError:
                good, bad = isolate(counted, runnable)
                values[PROMQL] = good
                for key, message in bad.items():
                    failures[key] = QueryError(
                        message, query=runnable[key], error=message, error_type="bad_data"
                    )
        except PrometheusError as exc:
            failures[PROMQL] = exc
    readings.queries = counted.count
    return readings
