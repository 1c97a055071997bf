"""The autoscaler tick: read every autoscaled ModelDeployment's metric from Prometheus at once
(one query per metric kind), decide each one's replicas, and hand back the states that changed.
Runs in a thread (the Prometheus client blocks); the runtime queues a reconcile for every key
whose state changed, and the reconcile writes the Deployment, status and Event."""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from prometheus_client import Counter, Histogram

from ..api.modeldeployment import (
    DEFAULT_PANIC_THRESHOLD_PERCENT,
    DEFAULT_SCALE_DOWN_WINDOW_SECONDS,
    DEFAULT_SCALE_UP_WINDOW_SECONDS,
    Autoscaling,
    ScalingBehavior,
    ScalingRules,
)
from ..autoscaling import decision, queries
from ..autoscaling.prometheus import PrometheusClient, PrometheusUnavailable
from ..settings import PrometheusSettings
from .queue import Key
from .scaling import ScaleState

# Units shown in explanations ("71 req/s per pod", "80% per pod", "310 ms").
UNITS = {**{kind: "" for kind in (*queries.KINDS, queries.PROMQL)}, **queries.UNIT}
UNITS[queries.REQUESTS_PER_SECOND] = "req/s"
TICK_SECONDS = Histogram(
    "modelship_operator_autoscaler_tick_seconds",
    "Duration of one autoscaler tick (queries and decisions for every autoscaled object).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUERIES = Counter(
    "modelship_operator_autoscaler_prometheus_queries",
    "Queries the autoscaler sent to Prometheus.",
)
DECISIONS = Counter(
    "modelship_operator_autoscaler_scale_decisions",
    "Replica changes the autoscaler decided.",
    ["direction"],
)
log = logging.getLogger(__name__)


def utc_now() -> str:
    """RFC 3339 with milliseconds: a decision's time is worth more than a second's precision."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Target:
    """One autoscaled ModelDeployment as the tick needs it."""

    key: Key
    autoscaling: Autoscaling
    current: int  # replicas asked of the Deployment now
    ready_pods: int
    cpu_request: float | None = None  # cores per pod, for cpuUtilization


def _rules(rules: ScalingRules | None, default_window: int) -> decision.ScalingRules:
    if rules is None:
        return decision.ScalingRules(default_window, (), "Max")
    window = rules.stabilization_window_seconds
    return decision.ScalingRules(
        default_window if window is None else window,
        tuple(
            decision.ScalingPolicy(p.type, p.value, p.period_seconds) for p in rules.policies or ()
        ),
        rules.select_policy,
    )


def behavior_of(behavior: ScalingBehavior | None) -> decision.Behavior:
    """The API's HPA-shaped behavior as the decision rule takes it, with our defaults."""
    behavior = behavior or ScalingBehavior()
    return decision.Behavior(
        scale_up=_rules(behavior.scale_up, DEFAULT_SCALE_UP_WINDOW_SECONDS),
        scale_down=_rules(behavior.scale_down, DEFAULT_SCALE_DOWN_WINDOW_SECONDS),
        panic_threshold=(behavior.panic_threshold_percent or DEFAULT_PANIC_THRESHOLD_PERCENT) / 100,
    )


def client_for(settings: PrometheusSettings) -> PrometheusClient | None:
    if not settings.url:
        return None
    return PrometheusClient(
        settings.url,
        bearer_token_file=settings.bearer_token_file or None,
        ca_file=settings.ca_file or None,
        cert_file=settings.cert_file or None,
        key_file=settings.key_file or None,
        insecure_skip_verify=settings.insecure_skip_verify,
        timeout=settings.timeout,
    )


class Autoscaler:
    """Keeps one recommender (the decision's memory) per ModelDeployment."""

    def __init__(
        self,
        client: queries.Querier | None,
        window: str = "3s",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = utc_now,
    ) -> None:
        self._client = client
        self._window = window
        self._clock = clock
        self._wall = wall
        self._recommenders: dict[Key, decision.Recommender] = {}
        self.queries_last_tick = 0

    def tick(
        self, targets: list[Target], previous: Mapping[Key, ScaleState]
    ) -> dict[Key, ScaleState]:
        """The state of every target after this tick; an unchanged state is the same object."""
        with TICK_SECONDS.time():
            return self._tick(targets, previous)

    def _tick(
        self, targets: list[Target], previous: Mapping[Key, ScaleState]
    ) -> dict[Key, ScaleState]:
        for gone in set(self._recommenders) - {t.key for t in targets}:
            del self._recommenders[gone]
        if not targets:
            self.queries_last_tick = 0
            return {}
        if self._client is None:
            message = (
                "no Prometheus address: start the operator with --prometheus-url "
                "(Helm value prometheus.url)"
            )
            return {
                t.key: _held(t, previous.get(t.key), "PrometheusNotConfigured", message)
                for t in targets
            }
        kinds = {t.autoscaling.metric for t in targets if t.autoscaling.metric != "promql"}
        user_queries = {
            t.key: t.autoscaling.promql
            for t in targets
            if t.autoscaling.metric == "promql" and t.autoscaling.promql
        }
        readings = queries.read_all(self._client, kinds, user_queries, self._window)
        self.queries_last_tick = readings.queries
        QUERIES.inc(readings.queries)
        now = self._clock()
        return {t.key: self._decide(t, previous.get(t.key), readings, now) for t in targets}

    def _decide(
        self,
        target: Target,
        before: ScaleState | None,
        readings: queries.Readings,
        now: float,
    ) -> ScaleState:
        spec = target.autoscaling
        failure = readings.error_for(spec.metric, target.key)
        if failure is not None:
            reason = (
                "PrometheusUnavailable"
                if isinstance(failure, PrometheusUnavailable)
                else "QueryFailed"
            )
            return _held(target, before, reason, f"replicas held: {failure}")
        value = readings.value_for(spec.metric, target.key)
        if value is None:
            namespace, name = target.key
            return _held(
                target,
                before,
                "NoData",
                f"replicas held: Prometheus has no {spec.metric} samples for the pods of "
                f"{namespace}/{name} (scraped with the labels namespace and modeldeployment)",
            )
        if spec.metric == "cpuUtilization":
            if not target.cpu_request:
                return _held(
                    target,
                    before,
                    "NoCPURequest",
                    "replicas held: cpuUtilization needs server.resources.requests.cpu",
                )
            value = queries.cores_to_percent(value, target.cpu_request)
        kind = queries.OBSERVATION_KIND[spec.metric]
        recommender = self._recommenders.setdefault(target.key, decision.Recommender())
        result = recommender.decide(
            now,
            target.current,
            decision.Observation(value, kind, target.ready_pods),
            float(spec.target),
            decision.Bounds(spec.min_replicas, spec.max_replicas),
            behavior_of(spec.behavior),
        )
        shown = result.value_per_pod
        if result.changed:
            recommender.commit(now, target.current, result.desired)
            message = decision.explain(result, spec.metric, float(spec.target), UNITS[spec.metric])
            up = result.desired > target.current
            DECISIONS.labels("up" if up else "down").inc()
            log.info("autoscaler: %s/%s %s", *target.key, message)
            return ScaleState(
                desired=result.desired,
                metric=spec.metric,
                target=spec.target,
                value=_finite(shown),
                reason="ScaledUp" if up else "ScaledDown",
                message=message,
                scaled_at=self._wall(),
            )
        if before is None or before.problem is not None or before.desired != target.current:
            # First reading, recovery from a metrics problem, or a restart: say what we see.
            return ScaleState(
                desired=target.current,
                metric=spec.metric,
                target=spec.target,
                value=_finite(shown),
                reason="Holding",
                message=(before.message if before is not None and before.problem is None else "")
                or f"holding {target.current}: {spec.metric} "
                f"{_fmt(shown)}{_unit(spec.metric)}, target {spec.target}",
                scaled_at=before.scaled_at if before is not None else None,
            )
        return before


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _unit(metric: str) -> str:
    unit = UNITS[metric]
    suffix = " per pod" if queries.OBSERVATION_KIND[metric] == "total" else ""
    return (f" {unit}" if unit and unit != "%" else unit) + suffix


def _held(target: Target, before: ScaleState | None, reason: str, message: str) -> ScaleState:
    """Replicas stay where they are; ScalingActive=False says why. Unchanged → same object."""
    if (
        before is not None
        and before.problem == message
        and before.problem_reason == reason
        and before.desired == target.current
    ):
        return before
    base = before or ScaleState(
        desired=target.current,
        metric=target.autoscaling.metric,
        target=target.autoscaling.target,
    )
    return replace(base, desired=target.current, problem_reason=reason, problem=message)
