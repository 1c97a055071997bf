"""What this node knows about one container of a pod: its process, restarts, probe results.

The decisions (restart or not, how long to back off, what state to show) are plain methods
on this record; starting processes and running probes happen in pod.py."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .backoff import Backoff
from .containers import ContainerProcess
from .probes import ProbeTiming, ProbeTracker
from .status import ContainerView, Running, State, Terminated, Waiting, exit_reason

TAKEOVER_MESSAGE = "the process was gone when the process-pods node restarted"


def restarts(restart_policy: str, *, init: bool, exit_code: int) -> bool:
    """Whether the kubelet starts the container again after this exit."""
    if init:
        return restart_policy != "Never" and exit_code != 0
    if restart_policy == "Always":
        return True
    return restart_policy == "OnFailure" and exit_code != 0


@dataclass
class ContainerRun:
    spec: Mapping[str, Any]
    init: bool
    state: State = field(default_factory=lambda: Waiting("PodInitializing"))
    last: Terminated | None = None
    restart_count: int = 0
    # An earlier instance existed: the next start counts as a restart.
    ran_before: bool = False
    failures_in_a_row: int = 0
    next_start: float = 0.0
    process: ContainerProcess | None = None
    ready: bool = False
    started: bool = False
    # Init: completed. Containers: stopped for good under the restart policy.
    done: bool = False
    probes: dict[str, ProbeTracker] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.done and isinstance(self.state, Terminated) and self.state.exit_code == 0

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def view(self, *, deleting: bool = False) -> ContainerView:
        return ContainerView(
            name=self.name,
            image=str(self.spec.get("image", "")),
            state=self.state,
            last_state=self.last,
            restart_count=self.restart_count,
            # Completed init containers report ready, as the kubelet does.
            ready=(self.done and self.init) or (self.ready and not deleting),
            started=self.started if not self.init else isinstance(self.state, Running),
            pid=self.process.pid if self.process else _pid_of(self.state, self.last),
        )

    def mark_started(self, process: ContainerProcess) -> None:
        if self.ran_before:
            self.restart_count += 1
        self.ran_before = True
        self.process = process
        self.state = Running(process.started)
        self.ready = False
        self.started = False
        self.probes = {}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in self.spec:
                timing = ProbeTiming.of(self.spec[kind])
                self.probes[kind] = ProbeTracker(timing, time.monotonic())
        if "startupProbe" not in self.probes:
            self.started = True

    def mark_exited(
        self, ended: Terminated, *, restart_policy: str, backoff: Backoff, now: float, pod: str
    ) -> None:
        """After an exit: back off towards a restart, or stop here (completed or final)."""
        self.process = None
        self.ready = False
        self.started = False
        self.probes = {}
        if not restarts(restart_policy, init=self.init, exit_code=ended.exit_code):
            self.state = ended
            self.done = True
            return
        if backoff.resets_after(ended.finished_at - ended.started_at):
            self.failures_in_a_row = 0
        self.failures_in_a_row += 1
        delay = backoff.delay(self.failures_in_a_row)
        self.last = ended
        self.next_start = now + delay
        self.state = Waiting(
            "CrashLoopBackOff",
            f"back-off {delay:g}s restarting failed container={self.name} pod={pod}",
        )

    def mark_waiting(self, reason: str, message: str) -> None:
        self.state = Waiting(reason, message)

    def seed(self, reported: Mapping[str, Any], *, now: float, restart_policy: str) -> None:
        """Take over what an earlier run of this node reported: restarts so far, the last exit,
        and completion; a container that was running has lost its process."""
        self.restart_count = int(reported.get("restartCount") or 0)
        self.last = terminated_of(reported.get("lastState", {}).get("terminated"))
        state = reported.get("state", {})
        if self.last is not None:
            self.ran_before = True
        if "running" in state or "terminated" in state:
            self.ran_before = True
        if "running" in state:
            started = parse_time(state["running"].get("startedAt")) or now
            pid_text = str(reported.get("containerID") or "").removeprefix("process://")
            pid = int(pid_text) if pid_text.isdigit() else None
            self.last = Terminated(137, "Error", TAKEOVER_MESSAGE, started, now, pid)
        ended = terminated_of(state.get("terminated"))
        if ended is not None:
            final = not restarts(restart_policy, init=self.init, exit_code=ended.exit_code)
            if final:
                self.state = ended
                self.done = True
            else:
                self.last = ended


def _pid_of(state: State, last: Terminated | None) -> int | None:
    if isinstance(state, Terminated):
        return state.pid
    return last.pid if last else None


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    import datetime  # noqa: PLC0415

    try:
        return (
            datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
            .replace(tzinfo=datetime.UTC)
            .timestamp()
        )
    except ValueError:
        return None


def terminated_of(value: Mapping[str, Any] | None) -> Terminated | None:
    if not value:
        return None
    code = int(value.get("exitCode", 0))
    pid_text = str(value.get("containerID") or "").removeprefix("process://")
    return Terminated(
        exit_code=code,
        reason=str(value.get("reason") or exit_reason(code)),
        message=str(value.get("message") or ""),
        started_at=parse_time(value.get("startedAt")) or 0.0,
        finished_at=parse_time(value.get("finishedAt")) or 0.0,
        pid=int(pid_text) if pid_text.isdigit() else None,
    )
