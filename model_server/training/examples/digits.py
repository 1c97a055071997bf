"""A small dense network on scikit-learn's bundled 8x8 digits (1,797 images, no download):
`modelship train --model modelship_server.training.examples.digits:model`.

The last 20 % of a fixed permutation of the data set is held out (`held_out()`), never trained
on. The exported model takes raw pixels (0..16, input `pixels`, shape [-1, 64]) and returns 10
class probabilities.

scikit-learn is a development dependency (the local cluster runs this checkout's environment);
the published image does not carry it, so an image that runs this example installs it."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ..plan import TrainingContext, TrainingPlan

HOLD_OUT = 0.2
SEED = 7


def _split() -> tuple[Any, Any, Any, Any]:
    # Lazily: scikit-learn is needed only when the example runs.
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # noqa: PLC0415

    digits = load_digits()
    # A fixed permutation first: the data set is ordered by writer, so its plain tail would test
    # on writers never seen in training.
    order = np.random.default_rng(SEED).permutation(len(digits.target))
    x = digits.data[order].astype(np.float32)
    y = digits.target[order].astype(np.int64)
    cut = int(len(x) * (1 - HOLD_OUT))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def held_out() -> tuple[Any, Any]:
    """The held-out images and labels, for checking an exported model."""
    _, _, x, y = _split()
    return x, y


# The same split under the name other callers use; pytest does not collect it from here.
test_split = held_out


def model(context: TrainingContext) -> TrainingPlan:
    x, y, x_test, y_test = _split()
    keras = tf.keras
    inputs = keras.Input(shape=(64,), name="pixels")
    hidden = keras.layers.Rescaling(1 / 16)(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(hidden)
    network = keras.Model(inputs, outputs)
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # A fixed seed: every worker shuffles the same way, as sharding by data expects.
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=SEED)
    validation = tf.data.Dataset.from_tensor_slices((x_test, y_test))
    return TrainingPlan(model=network, train=train, validation=validation)
