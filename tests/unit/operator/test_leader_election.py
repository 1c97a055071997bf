"""Leader election's decisions (operator/leader.py) with a fake clock, and two candidates on an
in-memory Lease store that enforces resourceVersion the way the apiserver does."""

from __future__ import annotations

import asyncio
import copy
import datetime
import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship_operator.leader import (
    Action,
    FencedKubeApi,
    LeaderElector,
    LeaseRecord,
    decide,
    lease_expired,
    lease_spec,
    record_of,
    renew_deadline_passed,
)
from modelship_operator.resources.names import ObjectRef

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseStore:
    """One Lease, with the apiserver's optimistic concurrency: an update must carry the
    resourceVersion it read, else 409."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise OSError("apiserver unreachable")

    def _write(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = {
            "metadata": {"name": "l", "namespace": "ns", "resourceVersion": str(self.version)},
            "spec": copy.deepcopy(spec),
        }
        return copy.deepcopy(self.lease)


class FakeLeases:
    namespace = "ns"
    name = "l"

    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    def get(self) -> dict[str, Any] | None:
        self.store._check()
        return copy.deepcopy(self.store.lease)

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.store._check()
        if self.store.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self.store._write(spec)

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        self.store._check()
        assert self.store.lease is not None
        if lease["metadata"]["resourceVersion"] != str(self.store.version):
            raise ApiException(status=409, reason="Conflict")
        return self.store._write(spec)


async def _nothing() -> None:
    return None


def candidate(store: LeaseStore, identity: str, clock: FakeClock, **kw: Any) -> LeaderElector:
    return LeaderElector(
        FakeLeases(store),  # type: ignore[arg-type]
        identity,
        on_started=_nothing,
        on_lost=lambda: None,
        clock=clock,
        **kw,
    )


def held(holder: str, duration: float = 10) -> LeaseRecord:
    return LeaseRecord(holder=holder, lease_duration=duration, transitions=3, acquire_time=NOW)


def test_no_lease_is_created() -> None:
    assert decide("me", None, observed_at=0, now=5) is Action.CREATE


def test_own_lease_is_renewed_even_when_late() -> None:
    assert decide("me", held("me"), observed_at=0, now=50) is Action.RENEW


def test_live_lease_of_another_is_left_alone() -> None:
    assert decide("me", held("other"), observed_at=100, now=109.9) is Action.WAIT


def test_lease_expires_by_the_readers_clock_after_its_duration() -> None:
    assert not lease_expired(held("other"), observed_at=100, now=109.9)
    assert lease_expired(held("other"), observed_at=100, now=110)
    assert decide("me", held("other"), observed_at=100, now=110) is Action.ACQUIRE


def test_released_lease_is_free_at_once() -> None:
    released = LeaseRecord(holder="", lease_duration=1)
    assert lease_expired(released, observed_at=100, now=100)
    assert decide("me", released, observed_at=100, now=100) is Action.ACQUIRE


def test_renew_deadline() -> None:
    assert not renew_deadline_passed(last_renewed=100, now=106.9, renew_deadline=7)
    assert renew_deadline_passed(last_renewed=100, now=107, renew_deadline=7)


def test_takeover_moves_acquire_time_and_counts_a_transition() -> None:
    later = NOW + datetime.timedelta(seconds=30)
    renewed = lease_spec("other", 10, held("other"), later)
    assert renewed["acquireTime"] == "2026-01-01T00:00:00.000000Z"
    assert renewed["leaseTransitions"] == 3
    taken = lease_spec("me", 10, held("other"), later)
    assert taken["holderIdentity"] == "me"
    assert taken["acquireTime"] == taken["renewTime"] == "2026-01-01T00:00:30.000000Z"
    assert taken["leaseTransitions"] == 4
    assert record_of({"spec": taken}) == LeaseRecord(
        holder="me", lease_duration=10, transitions=4, acquire_time=later
    )


def test_periods_must_let_the_leader_stop_before_the_lease_expires() -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        candidate(LeaseStore(), "a", FakeClock(), renew_deadline=10, lease_duration=10)


def test_one_of_two_candidates_leads_and_the_other_waits_until_expiry() -> None:
    store, clock = LeaseStore(), FakeClock()
    a, b = candidate(store, "a", clock), candidate(store, "b", clock)
    assert a.try_acquire_or_renew()
    a.leading = True
    assert not b.try_acquire_or_renew()
    clock.now += 9
    assert not b.try_acquire_or_renew()  # b first saw the record 9 s ago: still live
    assert a.try_acquire_or_renew()  # a renews: the record changes, b's clock restarts
    clock.now += 9
    assert not b.try_acquire_or_renew()
    clock.now += 1.5  # a stopped renewing (killed); 10 s after b saw its last renewal
    assert not b.try_acquire_or_renew()  # b saw the renewal only at its previous read
    clock.now += 9
    assert b.try_acquire_or_renew()
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1
    # a comes back: it sees b's name and knows it lost, without writing.
    version = store.version
    assert not a.try_acquire_or_renew()
    assert a.usurped
    assert store.version == version


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    store, clock = LeaseStore(), FakeClock()
    old = candidate(store, "old", clock)
    assert old.try_acquire_or_renew()
    a, b = candidate(store, "a", clock), candidate(store, "b", clock)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.now += 11
    # Both read the same expired record; only the first update with its resourceVersion lands.
    read_by_a = a.leases.get()
    read_by_b = b.leases.get()
    assert read_by_a == read_by_b
    leases_a, leases_b = a.leases, b.leases
    a.leases = _Replay(leases_a, read_by_a)  # type: ignore[assignment]
    b.leases = _Replay(leases_b, read_by_b)  # type: ignore[assignment]
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] == "a"


class _Replay:
    """Answers get() with a lease read earlier (a read that raced another candidate's write)."""

    def __init__(self, inner: FakeLeases, lease: dict[str, Any] | None) -> None:
        self.inner = inner
        self.lease = lease
        self.namespace, self.name = inner.namespace, inner.name

    def get(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.inner.create(spec)

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        return self.inner.update(lease, spec)


def test_release_clears_the_holder_so_a_standby_takes_over_at_once() -> None:
    store, clock = LeaseStore(), FakeClock()
    a, b = candidate(store, "a", clock), candidate(store, "b", clock)
    assert a.try_acquire_or_renew()
    a.leading = True
    assert not b.try_acquire_or_renew()
    asyncio.run(a.release())
    assert store.lease is not None
    assert not store.lease["spec"].get("holderIdentity")
    assert store.lease["spec"]["leaseDurationSeconds"] == 1
    assert b.try_acquire_or_renew()  # no time has passed


def test_leader_that_cannot_renew_calls_on_lost_within_the_deadline() -> None:
    store = LeaseStore()
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        elector = LeaderElector(
            FakeLeases(store),  # type: ignore[arg-type]
            "a",
            on_started=started,
            on_lost=lambda: events.append("lost"),
            lease_duration=2,
            renew_deadline=1,
            renew_period=0.1,
            retry_period=0.05,
        )
        task = asyncio.create_task(elector.run())
        while "started" not in events:
            await asyncio.sleep(0.01)
        store.failing = True
        cut = loop.time()
        await asyncio.wait_for(task, timeout=5)
        return loop.time() - cut

    took = asyncio.run(scenario())
    assert events == ["started", "lost"]
    assert 0.9 <= took < 2  # after the renew deadline, before the lease expires for others


def test_leader_seeing_another_holder_stops_at_its_next_renewal() -> None:
    store = LeaseStore()
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def scenario() -> None:
        elector = LeaderElector(
            FakeLeases(store),  # type: ignore[arg-type]
            "a",
            on_started=started,
            on_lost=lambda: events.append("lost"),
            lease_duration=5,
            renew_deadline=4,
            renew_period=0.05,
            retry_period=0.02,
        )
        task = asyncio.create_task(elector.run())
        while "started" not in events:
            await asyncio.sleep(0.01)
        assert store.lease is not None
        store._write({**store.lease["spec"], "holderIdentity": "intruder"})
        await asyncio.wait_for(task, timeout=1)

    asyncio.run(scenario())
    assert events == ["started", "lost"]


class _SlowResponse:
    status = 200

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def read(self) -> bytes:
        self.gate.wait(5)
        return b"{}"


class _SlowClient:
    """Stands in for the kubernetes ApiClient: every call blocks until `gate` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0

    def param_serialize(self, **kw: Any) -> tuple[Any, ...]:
        return (kw["method"], kw["resource_path"])

    def call_api(self, *_: Any, **__: Any) -> _SlowResponse:
        self.calls += 1
        return _SlowResponse(self.gate)


def test_fenced_api_refuses_writes_once_closed_and_reports_when_in_flight_ones_land() -> None:
    fake = _SlowClient()
    api = FencedKubeApi(fake)  # type: ignore[arg-type]
    ref = ObjectRef(name="m", namespace="ns", uid="u", generation=1, kind="ModelDeployment")
    in_flight = threading.Thread(target=api.apply_status, args=(ref, {}))
    in_flight.start()
    while fake.calls == 0:
        time.sleep(0.01)
    api.close()
    with pytest.raises(ApiException) as refused:
        api.apply_status(ref, {})
    assert refused.value.status == 503
    assert fake.calls == 1  # the refused write never reached the client
    assert not api.wait_idle(0.1)  # the first is still in flight
    fake.gate.set()
    assert api.wait_idle(2)
    in_flight.join()
