"""Warm-up before a version turns AVAILABLE, so its first real request is not the slow one.

Replays `assets.extra/tf_serving_warmup_requests` (TFRecord of PredictionLog, as TF Serving does);
without that file, runs the default signature once on a zero-filled batch of one when its input
shapes allow it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from ..core import dtypes
from ..core.errors import Code, ServingError
from ..core.types import DEFAULT_SIGNATURE, Servable, Signature, Tensors

log = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


def run(servable: Servable, path: str) -> int:
    """Warm the servable up; return how many requests ran. A bad warm-up file fails the load."""
    file = Path(path) / WARMUP_FILE
    if file.is_file():
        return _replay(servable, file)
    sig = servable.signatures.get(DEFAULT_SIGNATURE)
    inputs = _synthetic_inputs(sig) if sig else None
    if sig is None or inputs is None:
        return 0
    try:
        servable.run(sig.name, inputs, None)
    except ServingError as exc:  # a model may reject zeros; that is no reason to refuse it
        log.info("synthetic warm-up of %s skipped: %s", path, exc.message)
        return 0
    return 1


def _replay(servable: Servable, file: Path) -> int:
    count = 0
    try:
        for record in tf.data.TFRecordDataset(str(file)).take(MAX_WARMUP_RECORDS):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if not entry.HasField("predict_log"):
                continue
            request = entry.predict_log.request
            sig = request.model_spec.signature_name or DEFAULT_SIGNATURE
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            servable.run(sig, inputs, list(request.output_filter) or None)
            count += 1
    except ServingError:
        raise
    except Exception as exc:
        raise ServingError(Code.INVALID_ARGUMENT, f"warm-up from {file} failed: {exc}") from exc
    log.info("warm-up replayed %d request(s) from %s", count, file)
    return count


def _synthetic_inputs(sig: Signature) -> Tensors | None:
    inputs: Tensors = {}
    for key, spec in sig.inputs.items():
        if spec.shape is None or dtypes.is_string(spec.dtype):
            return None
        if any(dim < 0 for dim in spec.shape[1:]):
            return None
        shape = (1, *spec.shape[1:]) if spec.shape else ()
        inputs[key] = np.zeros(shape, dtype=dtypes.numpy_dtype(spec.dtype))
    return inputs
