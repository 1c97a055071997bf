"""Supervising the cluster's processes: spawn one with its log file, check it is alive, stop
it with SIGTERM then SIGKILL, and wait for a health check while watching for early exits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


class ClusterError(RuntimeError):
    """The cluster did not come up; the message ends with the tails of the component logs."""


@dataclass(frozen=True)
class Command:
    """How to run one component: its argv, and its environment when not the caller's."""

    argv: list[str]
    env: dict[str, str] | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Supervisor:
    """The processes of one cluster by name. `pids` also holds processes of an earlier run that
    this one attached to (no Popen handle then, only the pid)."""

    logs: Path
    cwd: Path
    pids: dict[str, int] = field(default_factory=dict)
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def spawn(self, name: str, command: Command) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            child = subprocess.Popen(
                command.argv,
                env=command.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                # Its own session: `make up` returns while the cluster keeps running.
                start_new_session=True,
            )
        self._children[name] = child
        self.pids[name] = child.pid

    def alive(self, name: str) -> bool:
        child = self._children.get(name)
        if child is not None:
            return child.poll() is None
        return name in self.pids and pid_alive(self.pids[name])

    def exited(self) -> list[str]:
        """The processes this run started that have already exited."""
        return [name for name, child in self._children.items() if child.poll() is not None]

    def stop(self, name: str, *, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL once `grace` seconds have passed."""
        pid = self.pids.pop(name, None)
        child = self._children.pop(name, None)
        if pid is None:
            return
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if (child.poll() is not None) if child is not None else not pid_alive(pid):
                return
            time.sleep(0.1)
        self._signal(pid, signal.SIGKILL)
        if child is not None:
            child.wait(timeout=10)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` and wait for the exit: no grace, as a crash or an OOM kill would."""
        pid = self.pids.pop(name, None)
        child = self._children.pop(name, None)
        if pid is None:
            return
        self._signal(pid, sig)
        if child is not None:
            child.wait(timeout=30)

    def stop_all(self) -> None:
        """Newest first, so nothing outlives what it depends on."""
        for name in reversed(list(self.pids)):
            self.stop(name)

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def wait_for(
        self,
        what: str,
        check: Callable[[], bool],
        timeout: float,
        report: Callable[[], str],
    ) -> None:
        """Poll `check`; give up at the deadline, or at once when a process has exited.
        `report` supplies the log tails for the error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if check():
                    return
            dead = self.exited()
            if dead:
                raise ClusterError(
                    f"waiting for {what}: exited early: {', '.join(dead)}\n{report()}"
                )
            time.sleep(0.2)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{report()}")
