"""A servable without TensorFlow for unit tests: subclasses say what `run` does."""

from __future__ import annotations

from collections.abc import Mapping

from modelship_server.core.types import Signature, Tensors


class FakeServable:
    @property
    def signatures(self) -> Mapping[str, Signature]:
        return {}

    def signature_def_map(self) -> bytes:
        return b""

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        return inputs

    def close(self) -> None:
        pass
