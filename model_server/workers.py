"""`--workers=N`: N server processes sharing the REST and gRPC ports (SO_REUSEPORT).

One Python process parses HTTP and JSON on one event loop, which one core bounds; N processes
use N cores. The supervisor imports no TensorFlow (TensorFlow's threads do not survive a fork):
it starts each worker as a fresh `python -m modelship_server`, forwards SIGTERM and SIGINT so
every worker drains, and starts a worker again when one dies. Each worker loads its own models
and batches its own requests; the kernel spreads new connections across them.

Workers find each other through a private folder: each writes its metrics there every second,
so whichever worker Prometheus reaches answers for all of them (see `metrics_share`).

On a GPU machine each worker is pinned to one GPU (CUDA_VISIBLE_DEVICES, set before it starts,
so its TensorFlow sees only that GPU): worker i gets the i-th visible GPU, round robin when
there are more workers than GPUs. The GPUs are found without TensorFlow (`visible_gpus`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("modelship_server.workers")

ENV_INDEX = "MODELSHIP_WORKER_INDEX"
ENV_COUNT = "MODELSHIP_WORKER_COUNT"
ENV_DIR = "MODELSHIP_WORKER_DIR"
ENV_CUDA = "CUDA_VISIBLE_DEVICES"

# A worker that exits this soon after starting failed to start (a port, a config): starting it
# again would fail the same way, so the whole server exits instead.
STARTUP_SECONDS = 10.0
RESTART_BACKOFF_MAX = 30.0


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """Who this process is among the workers, as the supervisor told it."""

    index: int
    count: int
    folder: str

    @staticmethod
    def from_env() -> WorkerInfo | None:
        if ENV_INDEX not in os.environ:
            return None
        return WorkerInfo(
            int(os.environ[ENV_INDEX]), int(os.environ[ENV_COUNT]), os.environ[ENV_DIR]
        )


def cpu_count() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU limit if one is set."""
    count = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    return count


# A CUDA_VISIBLE_DEVICES entry: an ordinal, or a GPU's or MIG instance's UUID as nvidia-smi -L
# prints it. CUDA stops reading the list at the first entry that is neither ("-1" hides all).
_CUDA_ENTRY = re.compile(r"\d+|(GPU|MIG)-[0-9A-Za-z/-]+")
_DEVICE_NODE = re.compile(r"nvidia\d+")


def visible_gpus(
    environ: Mapping[str, str] | None = None, dev: Path = Path("/dev")
) -> tuple[str, ...]:
    """The GPUs CUDA will show this process, as CUDA_VISIBLE_DEVICES entries; no TensorFlow.

    CUDA_VISIBLE_DEVICES, when set, is what CUDA honours: its entries up to the first invalid
    one (empty or "-1": no GPU). Otherwise the NVIDIA device nodes, /dev/nvidia0, /dev/nvidia1…
    (in a container, the runtime mounts only the pod's own GPUs; their numbers are the host's,
    so they are counted and named 0…n-1, as CUDA numbers them). A cheap look at the file system:
    importing TensorFlow in the supervisor would cost seconds and its threads do not survive a
    fork. NVIDIA_VISIBLE_DEVICES is not read: it tells the container runtime which device nodes
    to mount, and those nodes are what is counted.
    """
    env = os.environ if environ is None else environ
    listed = env.get(ENV_CUDA)
    if listed is not None:
        found: list[str] = []
        for entry in (part.strip() for part in listed.split(",")):
            if not _CUDA_ENTRY.fullmatch(entry):
                break
            found.append(entry)
        return tuple(found)
    try:
        names = os.listdir(dev)
    except OSError:
        return ()
    return tuple(str(i) for i in range(sum(1 for n in names if _DEVICE_NODE.fullmatch(n))))


def worker_env(
    base: Mapping[str, str], index: int, count: int, folder: str, gpus: Sequence[str] = ()
) -> dict[str, str]:
    """Worker `index`'s environment: who it is among the workers and, with GPUs, its one GPU."""
    env = {**base, ENV_INDEX: str(index), ENV_COUNT: str(count), ENV_DIR: folder}
    if gpus:
        env[ENV_CUDA] = gpus[index % len(gpus)]
    return env


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _reserve(host: str, port: int) -> socket.socket:
    """Claim the port for this server's workers; a port in use fails here, once, clearly.

    SO_REUSEPORT lets any process of the same user join a port, another modelship-server
    included, which would then take a share of the connections. A bind without it first
    fails while anyone holds the port (this server's reservation too, for the next one).
    The reservation stays open and never listens, so it is never handed connections.
    """
    _bind(host, port, reuse_port=False).close()
    return _bind(host, port, reuse_port=True)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor itself is killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        ports: Sequence[tuple[str, int]],
        gpus: Sequence[str] = (),
    ) -> None:
        self._argv = [*argv, "--workers=1"]
        self._count = count
        self._ports = ports
        self._gpus = tuple(gpus)
        self._folder = tempfile.mkdtemp(prefix="modelship-workers-")
        self._children: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self._stopping = False
        self._backoff = 1.0

    def run(self) -> int:
        try:
            reserved = [_reserve(host, port) for host, port in self._ports if port]
        except OSError as exc:
            log.error("cannot listen: %s", exc)
            return 1
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(self._count):
                self._start(index)
            return self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in reserved:
                sock.close()
            shutil.rmtree(self._folder, ignore_errors=True)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self._stopping:
            log.info("signal %d: stopping %d worker(s)", signum, len(self._children))
        self._stopping = True
        for proc, _ in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    def _start(self, index: int) -> None:
        env = worker_env(os.environ, index, self._count, self._folder, self._gpus)
        cmd = [sys.executable, "-m", "modelship_server", *self._argv]
        proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509
        self._children[index] = (proc, time.monotonic())
        if self._gpus:
            log.info("worker %d started (pid %d) on GPU %s", index, proc.pid, env[ENV_CUDA])
        else:
            log.info("worker %d started (pid %d)", index, proc.pid)

    def _watch(self) -> int:
        """Wait for workers; start dead ones again, until a signal or a failed start."""
        status = 0
        while self._children:
            time.sleep(0.1)
            for index, (proc, started) in list(self._children.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self._children[index]
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self._folder, f"metrics-{index}.json"))
                if self._stopping:
                    # SIGTERM before a starting worker set its handler: nothing was in flight.
                    if code != -signal.SIGTERM:
                        status = status or _exit_status(code)
                    continue
                if time.monotonic() - started < STARTUP_SECONDS:
                    log.error("worker %d exited with %d while starting: stopping", index, code)
                    status = code or 1
                    self._on_signal(signal.SIGTERM, None)
                    continue
                log.error("worker %d exited with %d: starting it again", index, code)
                time.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, RESTART_BACKOFF_MAX)
                self._start(index)
        return status


def _exit_status(code: int) -> int:
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as shells report


def supervise(
    argv: Sequence[str], count: int, ports: Sequence[tuple[str, int]], gpus: Sequence[str] = ()
) -> int:
    return Supervisor(argv, count, ports, gpus).run()
