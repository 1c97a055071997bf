"""Each pod listens on its own address: a bind() to the wildcard address becomes a bind() to the
pod's address (bindshim.c, preloaded into every container).

Process pods share this machine's network namespace. A program that listens on 0.0.0.0 or [::]
with a fixed port, as TensorFlow's gRPC server does with the port from TF_CONFIG, would take the
port for the whole machine, and a second pod on the same port fails ("Could not start gRPC
server"). In a real pod each has a network namespace of its own; here the preloaded bind()
gives the same effect for the listening side: the pod listens on `<pod IP>:<port>` (IPv4, or
`[::ffff:<pod IP>]` on a dual-stack IPv6 socket) and peers reach it at the pod's address.
Programs that bind the pod's address themselves (the model server) are untouched.

Why not a network namespace per pod: it needs a veth pair, a bridge, routes and NAT back to
the host for every pod, and the pods' loopback addresses would no longer be reachable from the
host's processes (probes, the service proxy) without more routing. The shim is one small
library, built here with the machine's C compiler (kept out of the repository as a binary);
statically linked programs (Go) do not load it and keep their wildcard binds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("processpods")

SOURCE = Path(__file__).with_name("bindshim.c")
POD_IP_ENV = "MODELSHIP_LOCAL_POD_IP"


def build(cache: Path, source: Path = SOURCE) -> Path | None:
    """The shim compiled into `cache` (once per source version), or None with the reason
    logged when there is no compiler or the build fails."""
    try:
        code = source.read_bytes()
    except OSError as err:
        log.warning("no bind shim (wildcard binds stay machine-wide): %s", err)
        return None
    target = cache / f"bindshim-{hashlib.sha256(code).hexdigest()[:16]}.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.warning("no bind shim (wildcard binds stay machine-wide): no C compiler (cc)")
        return None
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(source), "-ldl"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        log.warning(
            "no bind shim (wildcard binds stay machine-wide): %s %s",
            err,
            detail.decode(errors="replace").strip(),
        )
        partial.unlink(missing_ok=True)
        return None
    # Another node on this machine may build the same file at once: the rename is atomic.
    partial.replace(target)
    return target


def preload_env(env: Mapping[str, str], shim: Path, pod_ip: str) -> dict[str, str]:
    """The container's environment with the shim preloaded before any LD_PRELOAD of its own."""
    result = dict(env)
    result[POD_IP_ENV] = pod_ip
    result["LD_PRELOAD"] = " ".join(filter(None, [str(shim), env.get("LD_PRELOAD", "")]))
    return result
