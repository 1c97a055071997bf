"""Operator settings, from the command line (main.py) with environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Settings:
    workers: int = int(os.environ.get("MODELSHIP_WORKERS", "16"))
    resync_seconds: float = float(os.environ.get("MODELSHIP_RESYNC_SECONDS", "300"))
    metrics_port: int = int(os.environ.get("MODELSHIP_METRICS_PORT", "8080"))
    health_port: int = int(os.environ.get("MODELSHIP_HEALTH_PORT", "8081"))
    # How long to wait for a model server's answer about the version it serves (0: never ask).
    version_timeout: float = float(os.environ.get("MODELSHIP_VERSION_TIMEOUT", "1.0"))


SETTINGS = Settings()
