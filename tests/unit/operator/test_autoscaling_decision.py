"""The autoscaler's decision rule on synthetic series: tolerance, panic, stabilisation, rates."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from modelship_operator.autoscaling.decision import (
    Behavior,
    Bounds,
    Decision,
    Observation,
    ObservationKind,
    Recommender,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    explain,
)

TARGET = 16.0
WIDE = Bounds(1, 100)
DEFAULT = Behavior()


def load(per_pod: float, pods: int) -> Observation:
    """A summed metric (requests in flight...) of `pods` ready pods at `per_pod` each."""
    return Observation(value=per_pod * pods, kind="total", ready_pods=pods)


class Run:
    """Ticks a Recommender once a second and applies its decisions, as the operator would."""

    def __init__(self, replicas: int, behavior: Behavior = DEFAULT, bounds: Bounds = WIDE) -> None:
        self.recommender = Recommender()
        self.replicas = replicas
        self.behavior = behavior
        self.bounds = bounds
        self.now = 1000.0
        self.changes = 0

    def tick(
        self, total: float, kind: ObservationKind = "total", target: float = TARGET
    ) -> Decision:
        observation = Observation(value=total, kind=kind, ready_pods=self.replicas)
        decision = self.recommender.decide(
            self.now, self.replicas, observation, target, self.bounds, self.behavior
        )
        if decision.changed:
            self.recommender.commit(self.now, self.replicas, decision.desired)
            self.replicas = decision.desired
            self.changes += 1
        self.now += 1.0
        return decision

    def steady(self, seconds: int, per_pod: float = TARGET) -> None:
        """Load exactly at target on whatever replicas run."""
        for _ in range(seconds):
            self.tick(per_pod * self.replicas)


def test_within_tolerance_nothing_changes() -> None:
    run = Run(4)
    for factor in (1.0, 1.09, 0.91, 1.1, 0.9):
        decision = run.tick(TARGET * 4 * factor)
        assert decision.raw == 4
        assert not decision.changed
        assert decision.limited_by is None


def test_outside_tolerance_after_up_window_scales_to_ceil_of_total_over_target() -> None:
    run = Run(4)
    run.steady(30)
    total = 4 * TARGET * 1.5  # 96 → 6 pods of 16
    first = run.tick(total)
    assert first.raw == math.ceil(total / TARGET)
    assert not first.changed  # held: the window still has lower recommendations
    assert first.limited_by == "scale-up stabilization window"
    assert not first.panic
    window = DEFAULT.scale_up.stabilization_window_seconds
    later = [run.tick(total) for _ in range(window)]
    assert run.replicas == math.ceil(total / TARGET)
    # it moved once the last on-target recommendation (1 s before the load) left the window
    assert [d.changed for d in later].index(True) == window - 2


def test_fresh_recommender_scales_up_on_the_first_reading() -> None:
    run = Run(2)
    decision = run.tick(2 * 71.0)
    assert decision.desired == math.ceil(2 * 71.0 / TARGET)


def test_panic_skips_the_up_window() -> None:
    run = Run(2)
    run.steady(60)
    decision = run.tick(2 * 71.0)  # 4.4x the target
    assert decision.panic
    assert decision.changed
    assert decision.desired == math.ceil(2 * 71.0 / TARGET)
    assert decision.value_per_pod == 71.0


def test_below_panic_threshold_the_up_window_holds() -> None:
    run = Run(2)
    run.steady(60)
    decision = run.tick(2 * TARGET * 1.9)
    assert not decision.panic
    assert not decision.changed
    assert decision.raw > 2


def test_panic_threshold_is_configurable() -> None:
    run = Run(2, Behavior(panic_threshold=1.5))
    run.steady(60)
    assert run.tick(2 * TARGET * 1.6).panic


def test_scale_down_waits_for_its_window_then_takes_the_max_of_it() -> None:
    run = Run(4)
    run.steady(100)  # raw 4 for 100 s
    for _ in range(100):
        run.tick(3 * TARGET)  # raw 3 for 100 s
    decisions = [run.tick(1 * TARGET) for _ in range(250)]  # raw 1 from here on
    window = DEFAULT.scale_down.stabilization_window_seconds
    # the raw-4 recommendations leave the window 300 s after the last of them
    held = [d for d in decisions if d.current == 4]
    assert len(held) == window - 100
    assert all(d.limited_by == "scale-down stabilization window" for d in held)
    assert run.replicas == 3  # the max of the window, not the latest raw
    for _ in range(100):
        run.tick(1 * TARGET)
    assert run.replicas == 1


def test_no_load_means_min_replicas() -> None:
    run = Run(5, Behavior(scale_down=ScalingRules(0)), Bounds(2, 10))
    decision = run.tick(0.0)
    assert decision.raw == 0
    assert decision.desired == 2
    assert decision.limited_by == "minReplicas"


def test_max_replicas_caps_and_says_so() -> None:
    run = Run(2, bounds=Bounds(1, 5))
    decision = run.tick(2 * 71.0)
    assert decision.desired == 5
    assert decision.limited_by == "maxReplicas"


def test_current_outside_bounds_is_brought_back() -> None:
    run = Run(12, bounds=Bounds(1, 8))
    assert run.tick(12 * TARGET).desired == 8
    run = Run(1, bounds=Bounds(3, 8))
    assert run.tick(1 * TARGET).desired == 3


def test_ratio_kind_scales_current_by_the_ratio() -> None:
    run = Run(2)
    decision = run.tick(310.0, kind="ratio", target=200.0)  # p99 310 ms for a 200 ms target
    assert decision.raw == math.ceil(2 * 310 / 200)
    assert decision.value_per_pod == 310.0
    text = explain(decision, "p99 latency", 200.0, "ms")
    assert text == "2 → 4: p99 latency 310 ms, target 200 ms"


def _up(*policies: ScalingPolicy, select: SelectPolicy = "Max") -> Behavior:
    rules = ScalingRules(0, tuple(policies), select)
    return Behavior(scale_up=rules, scale_down=ScalingRules(0), panic_threshold=1e9)


def _down(*policies: ScalingPolicy, select: SelectPolicy = "Max") -> Behavior:
    rules = ScalingRules(0, tuple(policies), select)
    return Behavior(scale_up=ScalingRules(0), scale_down=rules)


def test_pods_policy_limits_each_period_and_frees_after_it() -> None:
    run = Run(2, _up(ScalingPolicy("Pods", 2, 60)))
    decision = run.tick(20 * TARGET)
    assert (decision.desired, decision.limited_by) == (4, "scaleUp policy")
    for _ in range(59):
        assert run.tick(20 * TARGET).desired == 4  # the period's 2 pods are spent
    assert run.tick(20 * TARGET).desired == 6  # the first scale left the period


def test_percent_policy_rounds_up() -> None:
    run = Run(3, _up(ScalingPolicy("Percent", 50, 60)))
    assert run.tick(20 * TARGET).desired == math.ceil(3 * 1.5)


def test_select_policy_max_min_disabled() -> None:
    policies = (ScalingPolicy("Pods", 1, 60), ScalingPolicy("Percent", 100, 60))
    assert Run(4, _up(*policies, select="Max")).tick(40 * TARGET).desired == 8
    assert Run(4, _up(*policies, select="Min")).tick(40 * TARGET).desired == 5
    disabled = Run(4, _up(*policies, select="Disabled")).tick(40 * TARGET)
    assert (disabled.desired, disabled.limited_by) == (4, "scaleUp policy")


def test_scale_down_policies() -> None:
    policies = (ScalingPolicy("Pods", 1, 30), ScalingPolicy("Percent", 50, 30))
    assert Run(5, _down(*policies, select="Max")).tick(1 * TARGET).desired == 2  # int(5 x 0.5)
    assert Run(5, _down(*policies, select="Min")).tick(1 * TARGET).desired == 4
    assert Run(5, _down(*policies, select="Disabled")).tick(1 * TARGET).desired == 5
    run = Run(10, _down(ScalingPolicy("Pods", 3, 30)))
    assert run.tick(1 * TARGET).desired == 7
    assert run.tick(1 * TARGET).desired == 7  # this period's 3 pods are spent
    for _ in range(28):
        run.tick(1 * TARGET)
    assert run.tick(1 * TARGET).desired == 4


def test_uncommitted_scales_do_not_count_against_the_rate() -> None:
    behavior = _up(ScalingPolicy("Pods", 2, 60))
    recommender = Recommender()
    for second in range(5):  # the writes fail: replicas stay 2, nothing is committed
        decision = recommender.decide(second, 2, load(TARGET * 10, 2), TARGET, WIDE, behavior)
        assert decision.desired == 4
    recommender.commit(5, 2, 4)
    assert recommender.decide(6, 4, load(TARGET * 5, 4), TARGET, WIDE, behavior).desired == 4


def test_noisy_steady_load_never_scales() -> None:
    rng = random.Random(9)
    run = Run(4)
    for _ in range(120):
        run.tick(4 * TARGET * rng.uniform(0.8, 1.2))
    assert run.changes == 0
    assert run.replicas == 4


def test_memory_stays_bounded() -> None:
    behavior = Behavior(
        scale_up=ScalingRules(10, (ScalingPolicy("Pods", 4, 60),)),
        scale_down=ScalingRules(20, (ScalingPolicy("Percent", 50, 30),)),
        panic_threshold=1.5,
    )
    rng = random.Random(10)
    run = Run(4, behavior, Bounds(1, 50))
    sizes = []
    total = 0.0
    for _ in range(10_000):
        if rng.random() < 1 / 30:  # a new load level about every 30 s
            total = rng.uniform(0, 50 * TARGET)
        run.tick(total * rng.uniform(0.7, 1.3))
        sizes.append(run.recommender.memory_size)
    assert run.changes > 200  # the series did move replicas, so events were recorded
    # one recommendation per second of the longest window, one event per second of the period
    assert max(sizes) <= 20 + 60 + 60


@settings(max_examples=200, deadline=None)
@given(
    series=st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=40),
    start=st.integers(0, 60),
    low=st.integers(1, 20),
    span=st.integers(0, 30),
    window=st.integers(0, 30),
    policy=st.sampled_from(["Max", "Min", "Disabled"]),
)
def test_result_always_within_bounds(
    series: list[float], start: int, low: int, span: int, window: int, policy: SelectPolicy
) -> None:
    bounds = Bounds(low, low + span)
    rules = ScalingRules(window, (ScalingPolicy("Pods", 2, 5),), policy)
    run = Run(start, Behavior(scale_up=rules, scale_down=rules), bounds)
    for total in series:
        decision = run.tick(total)
        assert bounds.min_replicas <= decision.desired <= bounds.max_replicas


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(st.floats(0, 5_000, allow_nan=False), max_size=30),
    replicas=st.integers(1, 40),
    factor=st.floats(0.9, 1.1),
)
def test_never_changes_inside_tolerance(history: list[float], replicas: int, factor: float) -> None:
    run = Run(replicas, bounds=Bounds(1, 200))
    for total in history:
        run.tick(total)
    current = run.replicas
    decision = run.tick(current * TARGET * factor)
    assert decision.raw == current
    assert decision.desired == current


def test_explain_names_the_numbers() -> None:
    run = Run(2)
    decision = run.tick(2 * 71.0)
    assert explain(decision, "inflightRequests", TARGET) == (
        "2 → 9: inflightRequests 71 per pod, target 16 (panic)"
    )
    capped = Run(2, bounds=Bounds(1, 3)).tick(2 * 71.0)
    assert explain(capped, "cpuUtilization", 80, "%").endswith(
        "target 80% (panic) (limited by maxReplicas)"
    )
