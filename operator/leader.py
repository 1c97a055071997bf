"""Leader election on a coordination.k8s.io/v1 Lease: of several operator replicas, one writes.

Why a Lease and not kopf's peering: a Lease is the Kubernetes standard every controller uses
(client-go's `leaderelection`, kube-controller-manager, kube-scheduler), so `kubectl get lease`
shows who leads and operators already know how to read it, and it needs no CRD of ours. kopf's
peering needs its own cluster-wide or namespaced peering CRD installed, and it only pauses the
handlers of the lower-priority peers: it has no lease duration, no renew deadline after which a
leader that can't reach the apiserver stops, and no optimistic concurrency between two peers
that both decide to run. Here every replica keeps kopf's watches and indexes running (warm
caches, so a new leader reconciles at once), and only the holder of the Lease starts the
controllers that write.

The algorithm is client-go's:
- a candidate reads the Lease every `retry_period` seconds. It notes, by its own monotonic
  clock, when it last saw the record change; the lease is expired `lease_duration` seconds
  after that (no comparison of two machines' wall clocks);
- an expired or released Lease is taken by an update carrying the resourceVersion that was
  read, so of two candidates at most one succeeds (the other gets 409 Conflict);
- the leader renews every `renew_period` seconds. If it has not renewed for `renew_deadline`
  seconds (less than `lease_duration`, so it stops before anyone else may start) it calls
  `on_lost`, which exits the process: in-flight writes die with it, and the pod restarts as a
  standby;
- on shutdown the leader releases the Lease (holder cleared, duration 1 s, as client-go's
  ReleaseOnCancel does), so a standby takes over at its next read instead of after expiry.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge
from urllib3.exceptions import HTTPError

from .kube import KubeApi

log = logging.getLogger(__name__)

LEADER = Gauge(
    "modelship_operator_leader",
    "1 while this operator process is the one that writes (holds the Lease, or runs without "
    "leader election), else 0.",
)

# Defaults: a SIGKILLed leader is replaced within lease_duration + retry_period (about 11 s);
# a leader that releases on SIGTERM within about retry_period.
LEASE_DURATION = 10.0
RENEW_DEADLINE = 7.0
RENEW_PERIOD = 2.0
RETRY_PERIOD = 1.0


def make_identity() -> str:
    """`<pod name or hostname>_<random>`: unique per process, even for two on one host."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says, as the election reads it."""

    holder: str  # "" when nobody holds it (never held, or released)
    lease_duration: float
    transitions: int = 0
    acquire_time: datetime.datetime | None = None


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet: create it holding it
    ACQUIRE = "acquire"  # someone else's lease expired or was released: take it over
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # someone else holds a live lease


def lease_expired(record: LeaseRecord, observed_at: float, now: float) -> bool:
    """Expired by the reader's own clock: `lease_duration` after it last saw the record change.
    A released lease (no holder) is free at once."""
    if not record.holder:
        return True
    return now >= observed_at + record.lease_duration


def decide(identity: str, record: LeaseRecord | None, observed_at: float, now: float) -> Action:
    """What a candidate does with the Lease it just read (None: there is none)."""
    if record is None:
        return Action.CREATE
    if record.holder == identity:
        return Action.RENEW
    if lease_expired(record, observed_at, now):
        return Action.ACQUIRE
    return Action.WAIT


def renew_deadline_passed(last_renewed: float, now: float, renew_deadline: float) -> bool:
    """A leader that has not renewed for this long must stop writing: by the time the lease
    expires for the others (lease_duration after the last renewal) it has stopped."""
    return now - last_renewed >= renew_deadline


def _micro_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    acquired = spec.get("acquireTime")
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_duration=float(spec.get("leaseDurationSeconds") or 0),
        transitions=int(spec.get("leaseTransitions") or 0),
        acquire_time=(
            datetime.datetime.fromisoformat(acquired.replace("Z", "+00:00")) if acquired else None
        ),
    )


def lease_spec(
    identity: str,
    lease_duration: float,
    previous: LeaseRecord | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The spec that holds the lease for `identity`: acquireTime and transitions carry over on a
    renewal, and move on a takeover."""
    renewing = previous is not None and previous.holder == identity
    acquired = previous.acquire_time if renewing and previous and previous.acquire_time else now
    transitions = (previous.transitions if previous else 0) + (
        0 if renewing or previous is None else 1
    )
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(lease_duration)),
        "acquireTime": _micro_time(acquired),
        "renewTime": _micro_time(now),
        "leaseTransitions": transitions,
    }


class LeaseClient:
    """The three requests the election makes, with the official client (blocking: called in a
    thread)."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str) -> None:
        self._api = api_client
        self.namespace = namespace
        self.name = name

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*serialized, _request_timeout=5)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else {}

    def _path(self, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        return f"{base}/{name}" if name else base

    def get(self) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = self._call("GET", self._path(self.name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return lease

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        created: dict[str, Any] = self._call("POST", self._path(), body)
        return created

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """Replace with the resourceVersion read: 409 Conflict if anyone wrote since."""
        meta = lease["metadata"]
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": spec,
        }
        updated: dict[str, Any] = self._call("PUT", self._path(self.name), body)
        return updated


def _wall_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    """One candidate. `run()` loops until cancelled: it waits as a standby, awaits
    `on_started` once it holds the Lease, renews it, and calls `on_lost` (which should exit)
    when it could not renew within the deadline. `release()` gives the Lease up."""

    def __init__(
        self,
        leases: LeaseClient,
        identity: str,
        on_started: Callable[[], Awaitable[None]],
        on_lost: Callable[[], None],
        *,
        lease_duration: float = LEASE_DURATION,
        renew_deadline: float = RENEW_DEADLINE,
        renew_period: float = RENEW_PERIOD,
        retry_period: float = RETRY_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_period <= renew_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period <= renew_period < renew_deadline < lease_duration")
        self.leases = leases
        self.identity = identity
        self._on_started = on_started
        self._on_lost = on_lost
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.renew_period = renew_period
        self.retry_period = retry_period
        self._clock = clock
        self.leading = False
        self.usurped = False
        self._last_renewed = 0.0
        # The last record seen, its resourceVersion, and when (our clock) it last changed.
        self._observed: tuple[str, LeaseRecord] | None = None
        self._observed_at = 0.0
        self._lock = asyncio.Lock()  # release() must not race a renewal

    def _observe(self, lease: dict[str, Any]) -> LeaseRecord:
        record = record_of(lease)
        version = lease["metadata"]["resourceVersion"]
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, record)
            self._observed_at = self._clock()
        return record

    def try_acquire_or_renew(self) -> bool:
        """One round (blocking). True when we hold the Lease after it."""
        lease = self.leases.get()
        now = self._clock()
        record = self._observe(lease) if lease is not None else None
        if self.leading and (record is None or record.holder != self.identity):
            self.usurped = True  # someone else holds it now: we must not write another byte
            return False
        action = decide(self.identity, record, self._observed_at, now)
        if action is Action.WAIT:
            return False
        spec = lease_spec(self.identity, self.lease_duration, record, _wall_now())
        try:
            if action is Action.CREATE or lease is None:
                written = self.leases.create(spec)
            else:
                written = self.leases.update(lease, spec)
        except ApiException as err:
            if err.status in (409, 422):  # someone else wrote first (or created it): not ours
                return False
            raise
        self._observe(written)
        if action is Action.ACQUIRE:
            log.info(
                "leader election: took over the Lease from %s",
                record.holder if record else "nobody",
            )
        return True

    async def _round(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except (ApiException, HTTPError, OSError) as err:
            log.warning("leader election: the Lease could not be read or written (%s)", err)
            return False

    async def run(self) -> None:
        LEADER.set(0)
        log.info(
            "leader election: candidate %s for Lease %s/%s",
            self.identity,
            self.leases.namespace,
            self.leases.name,
        )
        while not self.leading:
            async with self._lock:
                acquired = await self._round()
            if acquired:
                self.leading = True
                self._last_renewed = self._clock()
                LEADER.set(1)
                log.info("leader election: %s leads", self.identity)
                await self._on_started()
            else:
                await asyncio.sleep(self.retry_period)
        while True:
            await asyncio.sleep(self.renew_period)
            async with self._lock:
                if not self.leading:
                    return  # released
                renewed = await self._round()
            if renewed:
                self._last_renewed = self._clock()
            elif self.usurped or renew_deadline_passed(
                self._last_renewed, self._clock(), self.renew_deadline
            ):
                self.leading = False
                LEADER.set(0)
                log.error(
                    "leader election: %s lost the Lease (%s); stopping",
                    self.identity,
                    "another holder took it"
                    if self.usurped
                    else f"not renewed for {self.renew_deadline:.0f}s",
                )
                self._on_lost()
                return

    async def release(self) -> None:
        """Give the Lease up, if we hold it: a standby takes it at its next read."""
        async with self._lock:
            if not self.leading:
                return
            self.leading = False
            LEADER.set(0)
            try:
                await asyncio.to_thread(self._release)
            except (ApiException, HTTPError, OSError) as err:
                log.warning("leader election: could not release the Lease (%s)", err)

    def _release(self) -> None:
        lease = self.leases.get()
        if lease is None or record_of(lease).holder != self.identity:
            return
        now = _micro_time(_wall_now())
        spec = {
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": record_of(lease).transitions,
        }
        self.leases.update(lease, spec)
        log.info("leader election: %s released the Lease", self.identity)


class FencedKubeApi(KubeApi):
    """KubeApi whose writes pass a gate: refused once `close()` is called (leadership given up),
    and counted while in flight, so a leader that hands over waits for its last requests to land
    before it releases the Lease."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self._open = True
        self._in_flight = 0
        self._idle = threading.Condition()

    def close(self) -> None:
        with self._idle:
            self._open = False

    def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight (False: `timeout` passed first)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _call(
        self,
        method: str,
        kind: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        with self._idle:
            if not self._open:
                raise ApiException(status=503, reason="this operator is no longer the leader")
            self._in_flight += 1
        try:
            return super()._call(method, kind, path, body, query=query, content_type=content_type)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
