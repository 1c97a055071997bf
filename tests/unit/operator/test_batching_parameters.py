"""The batching file the operator writes parses back, with the server's own parser, to the spec."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from google.protobuf import text_format
from hypothesis import given
from hypothesis import strategies as st
from modelship_operator.api.modeldeployment import Batching
from modelship_operator.resources.batching import batching_parameters
from modelship_server.batching_file import format_batching
from modelship_server.config_files import parse_batching
from modelship_server.core.config import BatchingConfig
from modelship_server.proto import serving_config_pb2

WRAPPED_FIELDS = (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
)


def _values(config: BatchingConfig) -> dict[str, Any]:
    return {
        "max_batch_size": config.max_batch_size,
        "batch_timeout_micros": config.batch_timeout_micros,
        "max_enqueued_batches": config.max_enqueued_batches,
        "num_batch_threads": config.num_batch_threads,
        "allowed_batch_sizes": list(config.allowed_batch_sizes),
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"enabled": True},
        {"enabled": True, "maxBatchSize": 8, "allowedBatchSizes": [4, 8]},
        # Protobuf prints a wrapper holding 0 as an empty message: it must still read back as 0.
        {"enabled": True, "batchTimeoutMicros": 0, "numBatchThreads": 3},
        {
            "enabled": True,
            "maxBatchSize": 4096,
            "batchTimeoutMicros": 10_000_000,
            "maxEnqueuedBatches": 100_000,
            "numBatchThreads": 256,
            "allowedBatchSizes": [1, 2, 4096],
        },
    ],
)
def test_the_spec_reads_back_unchanged(spec: dict[str, Any]) -> None:
    batching = Batching.model_validate(spec)

    parsed = parse_batching(batching_parameters(batching))

    assert _values(parsed) == {
        "max_batch_size": batching.max_batch_size,
        "batch_timeout_micros": batching.batch_timeout_micros,
        "max_enqueued_batches": batching.max_enqueued_batches,
        "num_batch_threads": batching.num_batch_threads,
        "allowed_batch_sizes": batching.allowed_batch_sizes or [],
    }


@st.composite
def _configs(draw: st.DrawFn) -> BatchingConfig:
    largest = draw(st.integers(1, 1 << 40))
    sizes = draw(st.sets(st.integers(1, largest), max_size=8))
    allowed = tuple(sorted(sizes | {largest})) if sizes else ()
    return BatchingConfig(
        max_batch_size=largest,
        batch_timeout_micros=draw(st.integers(0, 1 << 62)),
        max_enqueued_batches=draw(st.integers(1, 1 << 62)),
        num_batch_threads=draw(st.integers(1, 1 << 20)),
        allowed_batch_sizes=allowed,
    )


@given(_configs())
def test_any_valid_config_round_trips(config: BatchingConfig) -> None:
    assert parse_batching(format_batching(config)) == config


def test_every_field_is_written_so_the_servers_defaults_never_apply() -> None:
    text = format_batching(BatchingConfig(max_batch_size=7, batch_timeout_micros=0))
    message = text_format.Parse(text, serving_config_pb2.BatchingParameters())
    for field in WRAPPED_FIELDS:
        assert message.HasField(field), field
    assert message.batch_timeout_micros.value == 0


def test_the_operator_imports_no_tensorflow() -> None:
    """The operator's image runs without TensorFlow loaded: the shared writer must stay light."""
    code = (
        "import sys, modelship_operator.main, modelship_operator.resources.batching;"
        "assert 'modelship_server.batching_file' in sys.modules;"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('tensorflow', 'tensorflow_serving'));"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
