"""A pod's volumes as folders: emptyDir empty, configMap and secret keys as files, hostPath the
real path. A persistentVolumeClaim cannot be served by a process node."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .spec import ConfigError, Lookup, PodFacts

# (audience or None, expirationSeconds) → a service account token for the pod.
TokenSource = Callable[[str | None, int], str]

SOURCES = {"configMap": ("configmaps", "name"), "secret": ("secrets", "secretName")}


def prepare_volumes(
    pod: Mapping[str, Any],
    folders: Mapping[str, Path],
    lookup: Lookup,
    *,
    facts: PodFacts,
    token: TokenSource,
) -> None:
    """Create every volume's folder; raise ConfigError for one this node cannot provide."""
    for volume in pod.get("spec", {}).get("volumes") or []:
        name = volume["name"]
        folder = folders[name]
        if "emptyDir" in volume:
            folder.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in volume:
            _host_path(volume["hostPath"], folder)
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName", "?")
            raise ConfigError(
                f"volume {name!r} is persistentVolumeClaim {claim!r}: a process node cannot "
                "mount PersistentVolumeClaims (use hostPath or emptyDir)"
            )
        elif any(key in volume for key in SOURCES):
            key = next(k for k in SOURCES if k in volume)
            _fresh(folder)
            _write_keys(volume[key], key, folder, lookup)
        elif "projected" in volume or "downwardAPI" in volume:
            # The service account volume every pod gets unless it opts out is one of these.
            _fresh(folder)
            sources = (volume.get("projected") or {}).get("sources") or [
                {"downwardAPI": volume["downwardAPI"]}
            ]
            for source in sources:
                _project(source, folder, lookup, facts, token)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ConfigError(f"volume {name!r}: unsupported volume type {', '.join(kinds)}")


def _host_path(source: Mapping[str, Any], folder: Path) -> None:
    kind = source.get("type") or ""
    if kind == "DirectoryOrCreate":
        folder.mkdir(parents=True, exist_ok=True)
    elif kind == "Directory" and not folder.is_dir():
        raise ConfigError(f"hostPath type check failed: {folder} is not a directory")
    elif kind in ("File", "Socket") and not folder.exists():
        raise ConfigError(f"hostPath type check failed: {folder} does not exist")


def _write_keys(source: Mapping[str, Any], key: str, folder: Path, lookup: Lookup) -> None:
    kind, name_field = SOURCES[key]
    name = source.get(name_field, "")
    data = lookup(kind, name)
    if data is None:
        if source.get("optional"):
            return
        raise ConfigError(f'{kind[:-1]} "{name}" not found')
    items = source.get("items")
    paths = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    for data_key, relative in paths.items():
        if data_key not in data:
            raise ConfigError(f"couldn't find key {data_key} in {kind[:-1]} {name}")
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[data_key].encode("utf-8", "surrogateescape"))


def _fresh(folder: Path) -> None:
    """Rewritten whole each time, so a changed ConfigMap shows on the next pod start."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _project(
    source: Mapping[str, Any],
    folder: Path,
    lookup: Lookup,
    facts: PodFacts,
    token: TokenSource,
) -> None:
    if "serviceAccountToken" in source:
        request = source["serviceAccountToken"]
        seconds = int(request.get("expirationSeconds") or 3607)
        (folder / request["path"]).write_text(token(request.get("audience"), seconds))
    elif "configMap" in source:
        _write_keys({"name": "", **source["configMap"]}, "configMap", folder, lookup)
    elif "secret" in source:
        secret = dict(source["secret"])
        secret["secretName"] = secret.pop("name", "")
        _write_keys(secret, "secret", folder, lookup)
    elif "downwardAPI" in source:
        for item in source["downwardAPI"].get("items") or []:
            if "fieldRef" not in item:
                raise ConfigError(f"downwardAPI item {item.get('path')}: only fieldRef is served")
            target = folder / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(facts.field(item["fieldRef"]["fieldPath"]))
    else:
        raise ConfigError(f"unsupported projected source {sorted(source)}")
