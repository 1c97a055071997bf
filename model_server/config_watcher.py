"""Re-reads --model_config_file every poll interval and applies it when it changed."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from .config_files import ConfigError, load_model_config
from .core.manager import ModelManager

log = logging.getLogger("modelship_server")


class ConfigWatcher:
    def __init__(self, path: str, seconds: float, manager: ModelManager) -> None:
        self._path = path
        self._seconds = seconds
        self._manager = manager
        self._last = Path(path).read_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="config-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                data = Path(self._path).read_bytes()
                if data == self._last:
                    continue
                models = load_model_config(self._path)
            except (OSError, ConfigError) as exc:
                log.error("model config not reloaded: %s", exc)
                continue
            self._last = data
            log.info("model config changed: %s", [m.name for m in models])
            self._manager.set_config(models)
