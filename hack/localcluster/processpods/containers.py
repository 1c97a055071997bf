"""One container as a process: its own session and process group (so a kill reaches the workers
it spawns), its output appended to its log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

TERMINATION_MESSAGE_LIMIT = 4096
FALLBACK_LOG_LINES = 80


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ContainerProcess:
    """A started container. `poll()` reaps it; the group is killed once its leader has exited,
    as the runtime tears down a container's cgroup."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.log_offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            self._popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._popen.pid
        self.started = time.time()
        self.exit_code: int | None = None

    def poll(self) -> int | None:
        """The exit code once the process has exited (a signal N gives 128+N, as runtimes do)."""
        if self.exit_code is not None:
            return self.exit_code
        code = self._popen.poll()
        if code is None:
            return None
        self.exit_code = 128 - code if code < 0 else code
        # Whatever the program left behind in its group goes with it.
        signal_group(self.pid, signal.SIGKILL)
        return self.exit_code

    def signal(self, sig: int) -> None:
        if self.poll() is None:
            signal_group(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll() is not None:
                return self.exit_code
            time.sleep(0.05)
        return self.poll()

    def stop(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL it after `grace` seconds; the exit code."""
        self.signal(signal.SIGTERM)
        if self.wait(grace) is None:
            self.signal(signal.SIGKILL)
            self._popen.wait()
        code = self.poll()
        assert code is not None
        return code

    def log_tail(self) -> str:
        """The end of this run's output (for FallbackToLogsOnError)."""
        try:
            with self.log.open("rb") as log:
                log.seek(self.log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.splitlines()[-FALLBACK_LOG_LINES:])
        return tail[-TERMINATION_MESSAGE_LIMIT:]


def read_termination_message(path: Path) -> str:
    try:
        data = path.read_bytes()[:TERMINATION_MESSAGE_LIMIT]
    except OSError:
        return ""
    return data.decode(errors="replace")
