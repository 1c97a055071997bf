"""tf.Example inputs for Classify and Regress: JSON features and the serialized input tensor."""

from __future__ import annotations

from typing import Any

import numpy as np

# A proto module only (tf.Example's message classes); no TensorFlow ops run here.
from tensorflow.core.example import example_pb2, feature_pb2

from ..core.errors import invalid
from ..core.types import Signature
from ..protocols.json_tensors import decode_b64, is_b64

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def feature_from_json(name: str, value: Any) -> feature_pb2.Feature:
    """TF Serving's rules: ints → int64_list, any float → float_list, strings/b64 → bytes_list."""
    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    if not values:
        feature.float_list.SetInParent()
        return feature
    if all(isinstance(v, str) or is_b64(v) for v in values):
        feature.bytes_list.value.extend(
            v.encode() if isinstance(v, str) else decode_b64(v) for v in values
        )
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(not _INT64_MIN <= v <= _INT64_MAX for v in values):
            raise invalid(f"feature {name!r}: integer out of range for int64")
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise invalid(f"feature {name!r}: values must all be numbers or all be strings")
    return feature


def example_from_json(value: Any) -> bytes:
    if not isinstance(value, dict):
        raise invalid("each example must be a JSON object of features")
    example = example_pb2.Example()
    for name, feature in value.items():
        example.features.feature[name].CopyFrom(feature_from_json(name, feature))
    return bytes(example.SerializeToString())


def serialized_examples(examples: list[bytes], context: bytes = b"") -> np.ndarray:
    """The DT_STRING input tensor; a context is merged into each example (proto concatenation)."""
    array = np.empty(len(examples), dtype=object)
    array[:] = [context + example for example in examples]
    return array


def string_input_key(signature: Signature, method: str) -> str:
    if signature.method_name != method:
        raise invalid(
            f"Expected {method.rsplit('/', 1)[-1]} signature method_name to be {method}. "
            f"Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid(f"signature {signature.name!r} must have exactly one input")
    return next(iter(signature.inputs))


def classifications(outputs: dict[str, np.ndarray], count: int) -> list[list[tuple[str, float]]]:
    """Per example, its (label, score) pairs; labels are "" when the model gives scores only."""
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    if classes is None and scores is None:
        raise invalid("classification signature has neither 'classes' nor 'scores' outputs")
    results = []
    for i in range(count):
        row_scores = np.asarray(scores[i]).reshape(-1) if scores is not None else None
        row_classes = np.asarray(classes[i]).reshape(-1) if classes is not None else None
        size = len(row_scores) if row_scores is not None else len(row_classes)  # type: ignore[arg-type]
        results.append(
            [
                (
                    _label(row_classes[j]) if row_classes is not None else "",
                    float(row_scores[j]) if row_scores is not None else 0.0,
                )
                for j in range(size)
            ]
        )
    return results


def regressions(outputs: dict[str, np.ndarray], count: int) -> list[float]:
    values = outputs.get("outputs")
    if values is None:
        raise invalid("regression signature has no 'outputs' output")
    flat = np.asarray(values).reshape(-1)
    if flat.shape[0] != count:
        raise invalid(f"regression gave {flat.shape[0]} values for {count} examples")
    return [float(v) for v in flat]


def _label(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
