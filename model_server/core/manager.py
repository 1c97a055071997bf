"""The model registry: which versions of which models are loaded, polled from their base paths.

A background thread lists each model's base path, decides the aspired versions from the model's
version policy, loads new ones (warm-up included) and only then unloads those no longer aspired,
so a model never goes dark between versions. Readers take an immutable snapshot, lock-free.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..core.config import ModelConfig
from ..core.errors import Code, ServingError, not_found
from ..core.types import Loader, Resolved, Servable
from ..core.versions import plain_version

log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass
class VersionStatus:
    version: int
    state: str
    error_code: Code = Code.OK
    error_message: str = ""


@dataclasses.dataclass
class _Model:
    config: ModelConfig
    statuses: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    loaded: dict[int, Servable] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """What readers see: AVAILABLE servables, labels and version statuses per model."""

    available: dict[str, dict[int, Servable]]
    labels: dict[str, dict[str, int]]
    statuses: dict[str, list[VersionStatus]]


class ModelManager:
    def __init__(self, loader: Loader, poll_seconds: float = 1.0) -> None:
        self._loader = loader
        self._poll_seconds = poll_seconds
        self._unload_listeners: list[Callable[[Servable], None]] = []
        self._models: dict[str, _Model] = {}
        self._sync_lock = threading.Lock()  # one sync pass at a time; owns _models
        self._config_lock = threading.Lock()  # guards _pending only, so callers never wait a load
        self._pending: list[ModelConfig] | None = None
        self._snapshot = _Snapshot({}, {}, {})
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add_unload_listener(self, listener: Callable[[Servable], None]) -> None:
        """Call listener with each servable about to close (on the manager's thread)."""
        self._unload_listeners.append(listener)

    # -- configuration ------------------------------------------------------------------------

    def set_config(self, models: list[ModelConfig]) -> None:
        """Replace the served models from the next pass on; removed models are unloaded."""
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ServingError(Code.INVALID_ARGUMENT, f"duplicate model names in {names}")
        with self._config_lock:
            self._pending = list(models)
        self._wake.set()

    def apply_config(self, models: list[ModelConfig]) -> None:
        """set_config, then wait for the pass that applies it (blocking: call from a thread)."""
        self.set_config(models)
        self.sync()

    # -- polling ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="model-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self.sync()
            except Exception:  # a bug here must not end polling for every model
                log.exception("model sync failed")
            if self._poll_seconds <= 0:
                # TF Serving: a poll wait of 0 loads once and then only reacts to config changes.
                self._wake.wait()
            else:
                self._wake.wait(self._poll_seconds)

    def sync(self) -> None:
        """One pass: apply a pending config, then bring each model in line with policy and disk."""
        with self._sync_lock:
            self._apply_pending()
            for model in list(self._models.values()):
                self._sync_model(model)
                self._publish()

    def _apply_pending(self) -> None:
        with self._config_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        names = {m.name for m in pending}
        for name in [n for n in self._models if n not in names]:
            self._unload_all(self._models.pop(name))
        for config in pending:
            model = self._models.get(config.name)
            if model is None:
                self._models[config.name] = _Model(config)
            else:
                model.config = config
        self._publish()

    def _sync_model(self, model: _Model) -> None:
        on_disk = _version_dirs(model.config.base_path)
        aspired = model.config.policy.aspired(sorted(on_disk))
        for version in aspired:
            if version in model.loaded:
                continue
            if version not in on_disk:
                model.statuses[version] = VersionStatus(
                    version, END, Code.NOT_FOUND, f"version {version} not found under base path"
                )
                continue
            status = model.statuses.get(version)
            if status and status.error_code not in (Code.OK, Code.NOT_FOUND):
                continue  # failed to load: not retried while it stays on disk
            self._load(model, version, on_disk[version])
        # Forget errors of versions no longer aspired or gone from disk, so a fixed copy loads.
        for version, status in list(model.statuses.items()):
            if status.error_code == Code.OK or version in model.loaded:
                continue
            if version not in aspired or (
                version not in on_disk and status.error_code != Code.NOT_FOUND
            ):
                del model.statuses[version]
        if not any(v in model.loaded for v in aspired):
            return  # keep serving the old versions until a new one is AVAILABLE
        for version in list(model.loaded):
            if version not in aspired:
                self._unload(model, version)

    def _load(self, model: _Model, version: int, path: str) -> None:
        model.statuses[version] = VersionStatus(version, LOADING)
        self._publish()
        started = time.monotonic()
        try:
            servable = self._loader(path)
        except ServingError as exc:
            model.statuses[version] = VersionStatus(version, END, exc.code, exc.message)
            log.error("%s version %d failed to load: %s", model.config.name, version, exc.message)
            return
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            model.statuses[version] = VersionStatus(version, END, Code.UNKNOWN, message)
            log.error("%s version %d failed to load: %s", model.config.name, version, message)
            return
        model.loaded[version] = servable
        model.statuses[version] = VersionStatus(version, AVAILABLE)
        log.info(
            "%s version %d AVAILABLE (%.2fs)",
            model.config.name,
            version,
            time.monotonic() - started,
        )

    def _unload(self, model: _Model, version: int) -> None:
        model.statuses[version] = VersionStatus(version, UNLOADING)
        servable = model.loaded.pop(version)
        self._publish()
        for listener in self._unload_listeners:
            listener(servable)
        try:
            servable.close()
        finally:
            model.statuses[version] = VersionStatus(version, END)
        log.info("%s version %d unloaded", model.config.name, version)

    def _unload_all(self, model: _Model) -> None:
        for version in list(model.loaded):
            self._unload(model, version)

    def _publish(self) -> None:
        self._snapshot = _Snapshot(
            available={n: dict(m.loaded) for n, m in self._models.items()},
            labels={n: m.config.label_map() for n, m in self._models.items()},
            statuses={
                n: [dataclasses.replace(s) for _, s in sorted(m.statuses.items())]
                for n, m in self._models.items()
            },
        )

    # -- queries (any thread, never blocking) -------------------------------------------------

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Resolved:
        snap = self._snapshot
        versions = snap.available.get(name)
        if versions is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        if label is not None:
            labelled = snap.labels.get(name, {}).get(label)
            if labelled is None:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = labelled
        if version is None:
            if not versions:
                raise not_found(f"Servable not found for request: Latest({name})")
            version = max(versions)
        servable = versions.get(version)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return Resolved(name, version, servable)

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        statuses = self._snapshot.statuses.get(name)
        if not statuses:
            raise not_found(f"Could not find any versions of model {name}")
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise not_found(f"Could not find version {version} of model {name}")
        return statuses

    def available_versions(self, name: str) -> list[int]:
        return sorted(self._snapshot.available.get(name) or {})

    def model_names(self) -> list[str]:
        return list(self._snapshot.available)

    def ready(self) -> bool:
        """Every configured model has at least one AVAILABLE version."""
        snap = self._snapshot
        return bool(snap.available) and all(snap.available.values())

    def model_ready(self, name: str, version: int | None = None) -> bool:
        versions = self._snapshot.available.get(name) or {}
        return bool(versions) if version is None else version in versions


def _version_dirs(base_path: str) -> dict[int, str]:
    """Numeric subfolders of the base path by version number ("00000123" is version 123)."""
    try:
        entries = list(Path(base_path).iterdir())
    except OSError:
        return {}
    found: dict[int, str] = {}
    for entry in entries:
        version = plain_version(entry.name)
        if version is not None and entry.is_dir():
            found.setdefault(version, str(entry))
    return found
