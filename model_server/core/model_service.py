"""What protocol adapters may ask or change about the served models, besides running them.

TF Serving groups these as its ModelService: readiness, version statuses, config reloads. The
adapters go through here, never to the model manager, so the manager can change underneath them.
"""

from __future__ import annotations

from ..core.config import ModelConfig
from ..core.manager import ModelManager, VersionStatus


class ModelService:
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager
        self._draining = False

    def start_draining(self) -> None:
        """From now on the server reads as not ready, so load balancers stop sending to it."""
        self._draining = True

    @property
    def ready(self) -> bool:
        """Not draining, and every configured model has at least one AVAILABLE version."""
        return not self._draining and self._manager.ready()

    def model_ready(self, name: str, version: int | None = None) -> bool:
        """The server is ready and serves this model (this version, when given)."""
        return self.ready and self._manager.model_ready(name, version)

    def knows(self, name: str) -> bool:
        """The model is configured, whether or not a version of it is AVAILABLE yet."""
        return name in self._manager.model_names()

    def available_versions(self, name: str) -> list[int]:
        return self._manager.available_versions(name)

    def statuses(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """The model's version statuses (NOT_FOUND when unknown); a label stands for its version."""
        if label is not None:
            version = self._manager.resolve(name, None, label).version
        return self._manager.status(name, version)

    def reload(self, models: list[ModelConfig]) -> None:
        """Serve these models instead; returns once loaded (blocking: call from a thread)."""
        self._manager.apply_config(models)
