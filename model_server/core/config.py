"""Plain settings the data plane runs on, whatever file or flag they came from."""

from __future__ import annotations

import dataclasses
import enum


class PolicyKind(enum.Enum):
    LATEST = "latest"
    ALL = "all"
    SPECIFIC = "specific"


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    kind: PolicyKind = PolicyKind.LATEST
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def aspired(self, on_disk: list[int]) -> list[int]:
        """The versions to serve out of those found on disk (specific ones even when missing)."""
        if self.kind is PolicyKind.ALL:
            return sorted(on_disk)
        if self.kind is PolicyKind.SPECIFIC:
            return sorted(set(self.versions))
        return sorted(on_disk)[-max(self.num_versions, 1) :] if on_disk else []


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: tuple[tuple[str, int], ...] = ()

    def label_map(self) -> dict[str, int]:
        return dict(self.labels)


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 100
    num_batch_threads: int = 1
    allowed_batch_sizes: tuple[int, ...] = ()

    def padded_size(self, rows: int) -> int:
        for size in self.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows
