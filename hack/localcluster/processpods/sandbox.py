"""What a container's process gets besides its spec, to look like it runs in a pod of its own:
the node's hosts file as /etc/hosts (hosts.py) and its wildcard binds on the pod's address
(bindshim.py).

The hosts file is bind-mounted over /etc/hosts in a mount namespace of the container's own
(`unshare --mount`, then `mount --bind` and exec of the program: the pid stays the container's),
as the kubelet mounts its managed /etc/hosts into a pod. That needs root (CAP_SYS_ADMIN); when
it is not allowed the node logs why once, at its start, and runs containers without it: pod
names do not resolve, everything else works as before.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import bindshim
from .hosts import HostsFile

log = logging.getLogger("processpods")

ETC_HOSTS = Path("/etc/hosts")
# Run by /bin/sh in the new mount namespace: $0 is the node's hosts file, "$@" the program.
MOUNT_AND_EXEC = 'mount --bind "$0" /etc/hosts && exec "$@"'


def mount_prefix(unshare: str, sh: str = "/bin/sh") -> list[str]:
    """argv before `<hosts file> <program> <args...>`. Private propagation: the bind mount
    stays inside the container's namespace whatever the machine's mounts propagate."""
    return [unshare, "--mount", "--propagation", "private", "--", sh, "-c", MOUNT_AND_EXEC]


def mount_problem(prefix: Sequence[str], hosts: Path) -> str | None:
    """Why the hosts file cannot be mounted for containers, or None when it can (tried once)."""
    check = [*prefix, str(hosts), "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(check, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
    return None


@dataclass(frozen=True)
class Sandbox:
    hosts: HostsFile | None = None
    # argv prefix that mounts the hosts file (empty: containers see the machine's /etc/hosts).
    prefix: tuple[str, ...] = ()
    shim: Path | None = None

    @classmethod
    def prepare(cls, workdir: Path) -> Sandbox:
        hosts = HostsFile(workdir / "hosts", _read(ETC_HOSTS))
        unshare = shutil.which("unshare")
        prefix: tuple[str, ...] = ()
        if unshare is None:
            log.warning("pod names will not resolve: no unshare program on this machine")
        else:
            problem = mount_problem(mount_prefix(unshare), hosts.path)
            if problem:
                log.warning("pod names will not resolve: cannot mount a hosts file: %s", problem)
            else:
                prefix = tuple(mount_prefix(unshare))
        return cls(hosts=hosts, prefix=prefix, shim=bindshim.build(workdir / "cache"))

    def command(self, argv: Sequence[str]) -> list[str]:
        if not self.prefix or self.hosts is None:
            return list(argv)
        return [*self.prefix, str(self.hosts.path), *argv]

    def environment(self, env: Mapping[str, str], pod_ip: str) -> dict[str, str]:
        if self.shim is None:
            return dict(env)
        return bindshim.preload_env(env, self.shim, pod_ip)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
