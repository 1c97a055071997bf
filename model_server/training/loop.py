"""The training loop for multi-worker and parameter-server clusters.

Keras 3's fit() cannot train under MultiWorkerMirroredStrategy (it averages each scalar log value
"along axis 0" across workers, and its first-batch build reduces a tuple of PerReplica values;
keras-team/keras#20585) and does not drive a ParameterServerStrategy's ClusterCoordinator. So the
distributed modes run this small loop instead: the model's compiled loss and optimizer, the
same callbacks (BackupAndRestore, progress) called at the same points as fit() calls them.

It reports the loss and the compiled metrics that are plain functions of (labels, predictions)
(accuracy and its variants, mean errors, ...); other metrics and validation data are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

keras = tf.keras

Values = dict[str, Any]


def fit(
    strategy: Any,
    model: Any,
    data: Any,
    steps: int,
    epochs: int,
    global_batch: int,
    callbacks: list[Any],
    coordinator: Any = None,
) -> None:
    """Train `model` on batched `data`; with a `coordinator` (ParameterServerStrategy) the steps
    run on the workers, otherwise every worker runs this loop in lockstep."""
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    step = _step_function(strategy, model, global_batch)
    if coordinator is not None:
        iterator = iter(coordinator.create_per_worker_dataset(data.repeat()))

        def run(iterator: Any) -> Values:
            # fetch() waits for the step: in order and simple, at the cost of pipelining.
            remote = coordinator.schedule(step, args=(iterator,))
            return {k: v.fetch() if hasattr(v, "fetch") else v for k, v in remote.fetch().items()}

    else:
        iterator = iter(strategy.experimental_distribute_dataset(data.repeat()))

        def run(iterator: Any) -> Values:
            return step(iterator)

    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    model._initial_epoch = 0
    callback_list.on_train_begin()
    start = int(getattr(model, "_initial_epoch", 0) or 0)  # BackupAndRestore's restored epoch
    logs: dict[str, float] = {}
    for epoch in range(start, epochs):
        callback_list.on_epoch_begin(epoch)
        totals: dict[str, float] = {}
        for batch in range(steps):
            callback_list.on_train_batch_begin(batch)
            values = {k: float(v) for k, v in run(iterator).items()}
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v
            callback_list.on_train_batch_end(batch, values)
        logs = {k: v / steps for k, v in totals.items()}  # the epoch's mean, as fit() reports
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end(logs)


def _step_function(strategy: Any, model: Any, global_batch: int) -> Callable[[Any], Values]:
    per_example_loss = _loss(model.loss)
    metrics = metric_functions(model)
    optimizer = model.optimizer

    def replica_step(features: Any, labels: Any) -> Values:
        with tf.GradientTape() as tape:
            predictions = model(features, training=True)
            loss = tf.nn.compute_average_loss(
                per_example_loss(labels, predictions), global_batch_size=global_batch
            )
            loss += tf.nn.scale_regularization_loss(sum(model.losses)) if model.losses else 0.0
        grads = tape.gradient(loss, model.trainable_variables)
        # Keras' optimizer sums the gradients across replicas itself.
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        values = {"loss": loss}
        for name, function in metrics.items():
            per_example = tf.cast(function(labels, predictions), tf.float32)
            values[name] = tf.reduce_sum(per_example) / global_batch
        return values

    @tf.function  # type: ignore[untyped-decorator]
    def step(iterator: Any) -> Values:
        features, labels = next(iterator)
        values = strategy.run(replica_step, args=(features, labels))
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in values.items()
        }

    return step  # type: ignore[no-any-return]


def _loss(loss: Any) -> Callable[[Any, Any], Any]:
    """The compiled loss, per example (unreduced)."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # type: ignore[no-any-return]
    function = keras.losses.get(loss)
    if isinstance(function, keras.losses.Loss):
        return function.call  # type: ignore[no-any-return]
    if not callable(function):
        raise ValueError(f"cannot use the compiled loss {loss!r} in a distributed loop")
    return function  # type: ignore[no-any-return]


def metric_functions(model: Any) -> dict[str, Callable[[Any, Any], Any]]:
    """The compiled metrics given by name that are functions of (labels, predictions)."""
    config = getattr(model, "_compile_config", None)
    names = (config.config.get("metrics") if config is not None else None) or []
    loss_name = str(model.loss).lower()
    functions: dict[str, Callable[[Any, Any], Any]] = {}
    for name in names if isinstance(names, list | tuple) else [names]:
        if not isinstance(name, str):
            print(f"distributed loop: metric {name!r} is not reported", flush=True)
            continue
        function = _accuracy(loss_name) if name in ("accuracy", "acc") else None
        if function is None:
            candidate = getattr(keras.metrics, name, None)
            function = (
                candidate if callable(candidate) and not isinstance(candidate, type) else None
            )
        if function is None:
            print(f"distributed loop: metric {name!r} is not reported", flush=True)
            continue
        functions[name] = function
    return functions


def _accuracy(loss_name: str) -> Callable[[Any, Any], Any]:
    """Which accuracy "accuracy" means follows from the loss, as in Keras' compile()."""
    if "sparse" in loss_name:
        return keras.metrics.sparse_categorical_accuracy  # type: ignore[no-any-return]
    if "binary" in loss_name:
        return keras.metrics.binary_accuracy  # type: ignore[no-any-return]
    return keras.metrics.categorical_accuracy  # type: ignore[no-any-return]
