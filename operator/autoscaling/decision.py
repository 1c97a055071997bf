"""How many replicas one ModelDeployment should run: the HPA's algorithm plus a panic mode.

Pure: no I/O and no clock; the caller passes the time (a monotonic clock is best). The steps
follow the HorizontalPodAutoscaler's (pkg/controller/podautoscaler) so that its documentation
describes our `behavior` too:

1. the ratio rule: usage ratio = observed / target; within the tolerance nothing changes,
   otherwise the raw recommendation is ceil(ratio x pods);
2. stabilisation: the lowest raw of the scale-up window and the highest of the scale-down window
   bound the move (the current raw included), so a short dip or spike does not flap replicas;
3. rate policies: at most `value` pods or percent per period, counted from the replica count at
   the start of the period;
4. bounds: always within [minReplicas, maxReplicas].

Panic (after Knative): a burst at `panic_threshold` x target or more skips the scale-up window,
so replicas grow on the first tick that sees it; rate policies still apply.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]
ObservationKind = Literal["total", "ratio"]

# Float noise must not move a pod: ceil(48.000000000001 / 16) is 3, and 1.1 x target is inside
# a 10 % tolerance.
_SLACK = 1e-9
_UNLIMITED = 2**31 - 1

LIMITED_BY_MAX = "maxReplicas"
LIMITED_BY_MIN = "minReplicas"
LIMITED_BY_SCALE_UP_POLICY = "scaleUp policy"
LIMITED_BY_SCALE_DOWN_POLICY = "scaleDown policy"
LIMITED_BY_SCALE_UP_WINDOW = "scale-up stabilization window"
LIMITED_BY_SCALE_DOWN_WINDOW = "scale-down stabilization window"


@dataclass(frozen=True)
class ScalingPolicy:
    """At most `value` pods (Pods) or percent of the pods (Percent) per `period_seconds`."""

    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """One direction's behaviour. No policies means no rate limit; Disabled means no moves."""

    stabilization_window_seconds: int
    policies: tuple[ScalingPolicy, ...] = ()
    select_policy: SelectPolicy = "Max"

    @property
    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


DEFAULT_SCALE_UP = ScalingRules(stabilization_window_seconds=10)
DEFAULT_SCALE_DOWN = ScalingRules(stabilization_window_seconds=300)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    tolerance: float = 0.1
    panic_threshold: float = 2.0

    @property
    def longest_window(self) -> int:
        return max(
            self.scale_up.stabilization_window_seconds,
            self.scale_down.stabilization_window_seconds,
        )

    @property
    def longest_period(self) -> int:
        return max(self.scale_up.longest_period, self.scale_down.longest_period)


@dataclass(frozen=True)
class Bounds:
    min_replicas: int
    max_replicas: int

    def clamp(self, replicas: int) -> int:
        return min(max(replicas, self.min_replicas), self.max_replicas)


@dataclass(frozen=True)
class Observation:
    """One reading of the metric.

    kind "total": `value` is summed over the pods (requests in flight, req/s, CPU...) and the
    target is per pod. kind "ratio": `value` describes the whole deployment (p99 latency) and
    is compared with the target as it is.
    """

    value: float
    kind: ObservationKind
    ready_pods: int


@dataclass(frozen=True)
class Decision:
    desired: int
    current: int
    raw: int  # the ratio rule's recommendation, before stabilisation, rate and bounds
    value_per_pod: float  # value / ready pods for "total"; the value itself for "ratio"
    ratio: float  # usage ratio: observed / target
    panic: bool
    limited_by: str | None  # which step held `desired` away from `raw`, if any
    kind: ObservationKind = "total"

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def raw_recommendation(
    current: int, observation: Observation, target: float, tolerance: float
) -> tuple[int, float]:
    """The ratio rule: (raw replicas, usage ratio)."""
    if target <= 0:
        raise ValueError(f"target must be positive, not {target}")
    if observation.kind == "total":
        ratio = observation.value / (target * max(observation.ready_pods, 1))
        wanted = observation.value / target
    else:
        ratio = observation.value / target
        wanted = current * ratio
    if abs(ratio - 1.0) <= tolerance + _SLACK:
        return current, ratio
    return max(math.ceil(wanted - _SLACK), 0), ratio


def _changes_within(events: deque[tuple[float, int]], period: int, now: float) -> int:
    """Replicas added (or removed) by the events of the last `period` seconds."""
    cutoff = now - period
    return sum(change for when, change in events if when > cutoff)


@dataclass
class Recommender:
    """The autoscaler's memory for ONE ModelDeployment: recent recommendations and scale events.

    Both are kept only as long as the longest window or period of the latest behaviour needs,
    so memory stays bounded however long the object lives.
    """

    _recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    _scale_ups: deque[tuple[float, int]] = field(default_factory=deque)
    _scale_downs: deque[tuple[float, int]] = field(default_factory=deque)
    _behavior: Behavior | None = None

    @property
    def memory_size(self) -> int:
        """Entries held (recommendations plus scale events)."""
        return len(self._recommendations) + len(self._scale_ups) + len(self._scale_downs)

    def decide(
        self,
        now: float,
        current: int,
        observation: Observation,
        target: float,
        bounds: Bounds,
        behavior: Behavior,
    ) -> Decision:
        self._behavior = behavior
        self._forget(now)
        raw, ratio = raw_recommendation(current, observation, target, behavior.tolerance)
        panic = ratio >= behavior.panic_threshold and raw > current

        stabilized = self._stabilize(now, current, raw, behavior, panic)
        self._remember(now, raw)
        rated = self._rate_limit(now, current, stabilized, behavior)
        desired = bounds.clamp(rated)

        limited_by: str | None = None
        if desired > rated:
            limited_by = LIMITED_BY_MIN
        elif desired < rated:
            limited_by = LIMITED_BY_MAX
        elif rated != stabilized:
            limited_by = (
                LIMITED_BY_SCALE_UP_POLICY if stabilized > current else LIMITED_BY_SCALE_DOWN_POLICY
            )
        elif stabilized != raw:
            limited_by = (
                LIMITED_BY_SCALE_UP_WINDOW if raw > current else LIMITED_BY_SCALE_DOWN_WINDOW
            )
        per_pod = (
            observation.value / max(observation.ready_pods, 1)
            if observation.kind == "total"
            else observation.value
        )
        return Decision(
            desired=desired,
            current=current,
            raw=raw,
            value_per_pod=per_pod,
            ratio=ratio,
            panic=panic,
            limited_by=limited_by,
            kind=observation.kind,
        )

    def commit(self, now: float, from_replicas: int, to_replicas: int) -> None:
        """Count a scale the caller has written; rate policies look back at these."""
        change = to_replicas - from_replicas
        if change > 0:
            self._scale_ups.append((now, change))
        elif change < 0:
            self._scale_downs.append((now, -change))
        self._forget(now)

    # -- the steps --------------------------------------------------------------------------

    def _stabilize(
        self, now: float, current: int, raw: int, behavior: Behavior, panic: bool
    ) -> int:
        up_cutoff = now - behavior.scale_up.stabilization_window_seconds
        down_cutoff = now - behavior.scale_down.stabilization_window_seconds
        up = down = raw
        for when, recommendation in self._recommendations:
            if when > up_cutoff:
                up = min(up, recommendation)
            if when > down_cutoff:
                down = max(down, recommendation)
        if panic:
            up = raw
        if current < up:
            return up
        if current > down:
            return down
        return current

    def _rate_limit(self, now: float, current: int, desired: int, behavior: Behavior) -> int:
        if desired > current:
            return min(desired, max(self._scale_up_limit(now, current, behavior.scale_up), current))
        if desired < current:
            return max(
                desired, min(self._scale_down_limit(now, current, behavior.scale_down), current)
            )
        return desired

    def _period_start(self, now: float, current: int, period: int) -> int:
        added = _changes_within(self._scale_ups, period, now)
        removed = _changes_within(self._scale_downs, period, now)
        return current - added + removed

    def _scale_up_limit(self, now: float, current: int, rules: ScalingRules) -> int:
        if rules.select_policy == "Disabled":
            return current
        if not rules.policies:
            return _UNLIMITED  # no policy: no rate limit
        proposals = []
        for policy in rules.policies:
            start = self._period_start(now, current, policy.period_seconds)
            if policy.type == "Pods":
                proposals.append(start + policy.value)
            else:
                # rounded up, or a small deployment could never grow
                proposals.append(math.ceil(start * (1 + policy.value / 100)))
        return min(proposals) if rules.select_policy == "Min" else max(proposals)

    def _scale_down_limit(self, now: float, current: int, rules: ScalingRules) -> int:
        if rules.select_policy == "Disabled":
            return current
        if not rules.policies:
            return 0
        proposals = []
        for policy in rules.policies:
            start = self._period_start(now, current, policy.period_seconds)
            if policy.type == "Pods":
                proposals.append(start - policy.value)
            else:
                proposals.append(int(start * (1 - policy.value / 100)))
        # the smallest change keeps the most pods when scaling down
        return max(proposals) if rules.select_policy == "Min" else min(proposals)

    # -- memory -----------------------------------------------------------------------------

    def _remember(self, now: float, raw: int) -> None:
        # An older equal entry leaves every future window no later than a newer one does, so
        # replacing it changes no min or max: a steady series holds one entry.
        if self._recommendations and self._recommendations[-1][1] == raw:
            self._recommendations.pop()
        self._recommendations.append((now, raw))

    def _forget(self, now: float) -> None:
        if self._behavior is None:
            return
        window_cutoff = now - self._behavior.longest_window
        while self._recommendations and self._recommendations[0][0] <= window_cutoff:
            self._recommendations.popleft()
        period_cutoff = now - self._behavior.longest_period
        for events in (self._scale_ups, self._scale_downs):
            while events and events[0][0] <= period_cutoff:
                events.popleft()


def _number(value: float) -> str:
    if math.isfinite(value) and (abs(value) >= 100 or float(value).is_integer()):
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _with_unit(value: float, unit: str) -> str:
    if not unit or unit == "%":
        return f"{_number(value)}{unit}"
    return f"{_number(value)} {unit}"


def explain(decision: Decision, metric_label: str, target: float, unit: str = "") -> str:
    """One line for an Event or a status: `2 → 5: inflightRequests 71 per pod, target 16`."""
    observed = _with_unit(decision.value_per_pod, unit)
    per_pod = " per pod" if decision.kind == "total" else ""
    text = (
        f"{decision.current} → {decision.desired}: {metric_label} {observed}{per_pod},"
        f" target {_with_unit(target, unit)}"
    )
    if decision.panic:
        text += " (panic)"
    if decision.limited_by:
        text += f" (limited by {decision.limited_by})"
    return text
