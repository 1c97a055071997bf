"""Startup, readiness and liveness probes: when one is due and what its results add up to
(pure), and running one check (httpGet, tcpSocket, exec)."""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeTiming:
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )


class ProbeTracker:
    """One probe of one container run. `result` is None until the thresholds decide, then
    True (passing) or False (failing), and changes only when a threshold is crossed again."""

    def __init__(self, timing: ProbeTiming, started_at: float) -> None:
        self.timing = timing
        self._next = started_at + timing.initial_delay
        self._successes = 0
        self._failures = 0
        self.result: bool | None = None

    def due(self, now: float) -> bool:
        return now >= self._next

    def record(self, ok: bool, now: float) -> bool | None:
        self._next = now + self.timing.period
        if ok:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.timing.success_threshold:
                self.result = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.timing.failure_threshold:
                self.result = False
        return self.result


class ProbeError(Exception):
    """The probe cannot be run as written (an unknown port name, no handler)."""


@dataclass(frozen=True)
class ProbeTarget:
    """What a check needs from its container: the pod's address, named ports, and how to run
    an exec command there (argv, env, cwd already mapped to this machine)."""

    host: str
    ports: Mapping[str, int]
    run_exec: Callable[[Sequence[str], float], int]


def resolve_port(port: int | str, ports: Mapping[str, int]) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port not in ports:
        raise ProbeError(f"port {port!r} is not a named port of the container")
    return ports[port]


def container_ports(container: Mapping[str, Any]) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in container.get("ports") or [] if "name" in p}


def handler_check(handler: Mapping[str, Any], target: ProbeTarget, timeout: float) -> bool:
    """One run of a probe's (or a lifecycle hook's) handler: True on success."""
    if "httpGet" in handler:
        get = handler["httpGet"]
        return http_get(
            host=get.get("host") or target.host,
            port=resolve_port(get["port"], target.ports),
            path=get.get("path") or "/",
            scheme=str(get.get("scheme") or "HTTP"),
            headers={h["name"]: h["value"] for h in get.get("httpHeaders") or []},
            timeout=timeout,
        )
    if "tcpSocket" in handler:
        tcp = handler["tcpSocket"]
        return tcp_open(
            tcp.get("host") or target.host, resolve_port(tcp["port"], target.ports), timeout
        )
    if "exec" in handler:
        return target.run_exec(handler["exec"].get("command") or [], timeout) == 0
    raise ProbeError(f"no supported handler in {sorted(handler)}")


def http_get(
    *, host: str, port: int, path: str, scheme: str, headers: Mapping[str, str], timeout: float
) -> bool:
    """As the kubelet: 200-399 passes; TLS is not verified."""
    connection: http.client.HTTPConnection
    if scheme.upper() == "HTTPS":
        import ssl  # noqa: PLC0415 - only HTTPS probes need it

        context = ssl._create_unverified_context()  # the kubelet does not verify either
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "kube-probe/processpods", **headers})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return 200 <= status < 400


def tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def run_command(argv: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float) -> int:
    """An exec probe or hook: its exit code; a timeout counts as failure (-1)."""
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return -1
    except OSError:
        return 127
    return done.returncode
