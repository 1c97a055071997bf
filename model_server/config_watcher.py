"""Re-reads --model_config_file every poll interval and reports the parsed config when it changed.

What to do with a new config is not the watcher's business: it hands the parsed models to the
callback it was given (app.py wires that to the model manager).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .config_files import ConfigError, load_model_config
from .core.config import ModelConfig

log = logging.getLogger("modelship_server")

ConfigListener = Callable[[list[ModelConfig]], None]


class ConfigWatcher:
    def __init__(self, path: str, seconds: float, on_change: ConfigListener) -> None:
        self._path = path
        self._seconds = seconds
        self._on_change = on_change
        self._last = Path(path).read_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="config-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds):
            self.poll()

    def poll(self) -> list[ModelConfig] | None:
        """Read the file once; the new config (also given to the listener), or None if unchanged."""
        try:
            data = Path(self._path).read_bytes()
            if data == self._last:
                return None
            models = load_model_config(self._path)
        except (OSError, ConfigError) as exc:
            log.error("model config not reloaded: %s", exc)
            return None
        self._last = data
        log.info("model config changed: %s", [m.name for m in models])
        self._on_change(models)
        return models
