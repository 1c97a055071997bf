"""What a container's spec becomes on this machine: folders for its mounts, arguments with mount
paths rewritten, and its environment. Pure: objects it needs come through `lookup`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .images import VENV_BIN

# ("secrets" | "configmaps", name) → the object's data as text, or None when it does not exist.
Lookup = Callable[[str, str], Mapping[str, str] | None]
BASE_PATH = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError)."""


def volume_folders(pod: Mapping[str, Any], pod_dir: Path) -> dict[str, Path]:
    """Each volume's folder: hostPath is the real path, everything else lives in the pod's."""
    folders: dict[str, Path] = {}
    for volume in pod.get("spec", {}).get("volumes") or []:
        if "hostPath" in volume:
            folders[volume["name"]] = Path(volume["hostPath"]["path"])
        else:
            folders[volume["name"]] = pod_dir / "volumes" / volume["name"]
    return folders


@dataclass(frozen=True)
class Mount:
    path: str
    folder: Path


def mounts(container: Mapping[str, Any], folders: Mapping[str, Path]) -> list[Mount]:
    """The container's mounts, longest mount path first so /mnt/models wins over /mnt."""
    found = []
    for mount in container.get("volumeMounts") or []:
        folder = folders.get(mount["name"])
        if folder is None:
            raise ConfigError(f"volume {mount['name']!r} of mount {mount['mountPath']} not found")
        sub_path = mount.get("subPath") or ""
        found.append(Mount(mount["mountPath"].rstrip("/") or "/", folder / sub_path))
    return sorted(found, key=lambda m: -len(m.path))


def local_path(path: str, table: Sequence[Mount]) -> str:
    for mount in table:
        if path == mount.path or path.startswith(mount.path.rstrip("/") + "/"):
            return str(mount.folder) + path[len(mount.path) :]
    return path


FILE_SCHEME = "file://"


def _local_value(value: str, table: Sequence[Mount]) -> str:
    if value.startswith(FILE_SCHEME):
        return FILE_SCHEME + local_path(value[len(FILE_SCHEME) :], table)
    return local_path(value, table)


def map_arg(arg: str, table: Sequence[Mount]) -> str:
    """`--flag=/mnt/x`, a bare `/mnt/x` and `file:///mnt/x` point into the mount's folder."""
    if arg.startswith("-") and "=" in arg:
        flag, value = arg.split("=", 1)
        return f"{flag}={_local_value(value, table)}"
    return _local_value(arg, table)


def map_argv(argv: Sequence[str], table: Sequence[Mount]) -> list[str]:
    """The program (a path of this machine) stays; its arguments are mapped."""
    return [argv[0], *(map_arg(arg, table) for arg in argv[1:])]


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` references; `$$` is a literal `$`, unknown references stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


@dataclass(frozen=True)
class PodFacts:
    """What fieldRef can name."""

    name: str
    namespace: str
    uid: str
    node: str
    pod_ip: str
    host_ip: str
    service_account: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def of(cls, pod: Mapping[str, Any], pod_ip: str, host_ip: str) -> PodFacts:
        meta, spec = pod["metadata"], pod.get("spec", {})
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            uid=meta.get("uid", ""),
            node=spec.get("nodeName", ""),
            pod_ip=pod_ip,
            host_ip=host_ip,
            service_account=spec.get("serviceAccountName", "default"),
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
        )

    def field(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node,
            "spec.serviceAccountName": self.service_account,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
        }
        if path in simple:
            return simple[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            source = self.labels if match.group(1) == "labels" else self.annotations
            return source.get(match.group(2), "")
        raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


_KIND_NAMES = {"secrets": "Secret", "configmaps": "ConfigMap"}


def _key_ref(lookup: Lookup, kind: str, ref: Mapping[str, Any], namespace: str) -> str | None:
    data = lookup(kind, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{kind[:-1]} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(
            f"couldn't find key {ref['key']} in {_KIND_NAMES[kind]} {namespace}/{ref['name']}"
        )
    return data[ref["key"]]


def container_env(
    container: Mapping[str, Any],
    facts: PodFacts,
    *,
    home: Path,
    tmp_dir: Path | None,
    lookup: Lookup,
    table: Sequence[Mount] = (),
) -> dict[str, str]:
    """The process environment: a base like an image's, then envFrom, then env (later wins).
    An env `value` naming a mount path (`/mnt/x`, `file:///mnt/x`) points into the mount's
    folder, as arguments do; the node's own values (HOME, TMPDIR) are paths here already."""
    env = {"PATH": BASE_PATH, "HOME": str(home), "HOSTNAME": facts.name}
    if tmp_dir is not None:
        env["TMPDIR"] = str(tmp_dir)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for key, kind in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            if key not in source:
                continue
            ref = source[key]
            data = lookup(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind[:-1]} "{ref["name"]}" not found')
            env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        value = _env_value(var, facts, lookup, env)
        if value is not None:
            env[var["name"]] = _local_value(value, table) if "valueFrom" not in var else value
    return env


def _env_value(
    var: Mapping[str, Any], facts: PodFacts, lookup: Lookup, env: Mapping[str, str]
) -> str | None:
    if "valueFrom" not in var:
        return expand(str(var.get("value", "")), env)
    source = var["valueFrom"]
    if "secretKeyRef" in source:
        return _key_ref(lookup, "secrets", source["secretKeyRef"], facts.namespace)
    if "configMapKeyRef" in source:
        return _key_ref(lookup, "configmaps", source["configMapKeyRef"], facts.namespace)
    if "fieldRef" in source:
        return facts.field(source["fieldRef"]["fieldPath"])
    raise ConfigError(f"env {var['name']}: unsupported valueFrom {sorted(source)}")


def expand_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    return [argv[0], *(expand(arg, env) for arg in argv[1:])]


def tmp_folder(table: Sequence[Mount]) -> Path | None:
    for mount in table:
        if mount.path == "/tmp":
            return mount.folder
    return None


def termination_path(container: Mapping[str, Any]) -> str:
    return str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
