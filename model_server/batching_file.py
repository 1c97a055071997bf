"""The batching parameters file: a BatchingConfig as TF Serving's text-proto BatchingParameters.

The operator writes it into a ConfigMap; the server reads it with config_files.parse_batching.
Both go through the same proto message, so whatever is written parses back the same. Protobuf
only, never TensorFlow: the operator imports this module.
"""

from __future__ import annotations

from google.protobuf import text_format

from .core.config import BatchingConfig
from .proto import serving_config_pb2


def batching_proto(config: BatchingConfig) -> serving_config_pb2.BatchingParameters:
    """Every field set explicitly, so the file does not depend on the reader's defaults."""
    message = serving_config_pb2.BatchingParameters()
    message.max_batch_size.value = config.max_batch_size
    message.batch_timeout_micros.value = config.batch_timeout_micros
    message.max_enqueued_batches.value = config.max_enqueued_batches
    message.num_batch_threads.value = config.num_batch_threads
    message.allowed_batch_sizes.extend(config.allowed_batch_sizes)
    return message


def format_batching(config: BatchingConfig) -> str:
    """The file's text. A wrapper holding 0 prints as `{ }`: set, with the value 0."""
    text: str = text_format.MessageToString(batching_proto(config))
    return text
