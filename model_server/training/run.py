"""`modelship train`: run the user's function under the strategy TF_CONFIG calls for, train with
checkpoints and progress, export, and report the result."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from ..storage.upload import UploadError
from . import checkpoints, errors, evaluation, loop, ps, termination
from .cluster import Cluster, ConfigError, Mode, from_tf_config, strategy_for
from .export import export, new_version
from .plan import TrainingContext, TrainingPlan, UserModelError, check_plan, load_function
from .progress import Progress, ProgressCallback, ProgressMetrics


def main(args: argparse.Namespace) -> int:
    log = termination.target(args.termination_log)
    try:
        return train(args, log)
    except (ConfigError, UserModelError) as e:
        termination.failure(log, str(e))
        return errors.BAD_INPUT
    except UploadError as e:
        termination.failure(log, str(e))
        return errors.OTHER
    except Exception as e:
        if isinstance(e, errors.lost_peer_errors()):
            termination.failure(log, f"lost a peer: {type(e).__name__}: {_first_line(e)}")
            return errors.LOST_PEER
        termination.failure(log, f"training failed: {type(e).__name__}: {_first_line(e)}")
        return errors.OTHER


def train(args: argparse.Namespace, log: Path | None) -> int:
    cluster = from_tf_config(os.environ.get("TF_CONFIG"))
    if cluster.mode is Mode.PARAMETER_SERVER and cluster.task_type in ("worker", "ps"):
        return ps.serve(cluster)  # blocks until the pod is deleted
    function = load_function(args.model)  # a bad --model fails before any TF set-up
    root = checkpoints.checkpoint_root(args.checkpoint_dir, os.environ)
    if cluster.task_type == "evaluator":  # outside the cluster: the default strategy
        return evaluation.evaluate(args, cluster, function, root)
    strategy = strategy_for(cluster)  # MWMS must exist before other TF ops run
    print(f"task {cluster.name}: {cluster.mode.value}, {strategy_name(strategy)}", flush=True)
    context = TrainingContext(strategy, args.batch_size, args.epochs, cluster)
    with strategy.scope():
        plan = check_plan(function(context), args.model)
    train_data, steps = batched(plan.train, args.batch_size, args.steps_per_epoch)
    validation = None
    if plan.validation is not None:
        validation = plan.validation.batch(args.batch_size)

    folder = checkpoints.task_folder(root, cluster)
    if cluster.mode is Mode.MULTI_WORKER:
        resumed = checkpoints.agree(strategy, folder)
    else:
        resumed = checkpoints.saved_epoch(folder)
    if resumed:
        print(f"checkpoint in {folder}: epoch {resumed} done", flush=True)
    # The first scrape already shows the restored position and the planned total, not 0 of 0.
    progress = Progress(step=resumed * steps, epoch=resumed)
    metrics = ProgressMetrics() if cluster.exporter and args.metrics_port else None
    for_evaluators = evaluation.EvalCheckpoints(
        evaluation.eval_folder(root), keep=cluster.exporter, fresh=not resumed
    )
    callbacks = [
        checkpoints.callback(folder),
        ProgressCallback(progress, steps, args.epochs, metrics),
        for_evaluators,
    ]
    if metrics is not None:
        metrics.serve(args.metrics_host, args.metrics_port)
        print(f"progress on http://{args.metrics_host}:{args.metrics_port}/metrics", flush=True)
    fit(
        cluster,
        strategy,
        plan,
        train_data,
        validation,
        steps,
        args.epochs,
        args.batch_size,
        callbacks,
    )

    exported = export(plan.model, args.output, cluster.exporter, new_version())
    checkpoints.remove(folder)
    for_evaluators.finish()
    if exported:
        print(f"exported {exported}", flush=True)
    if cluster.exporter:
        termination.success(log, exported, progress.as_dict())
    return 0


def fit(
    cluster: Cluster,
    strategy: Any,
    plan: TrainingPlan,
    train_data: Any,
    validation: Any,
    steps: int,
    epochs: int,
    batch_size: int,
    callbacks: list[Any],
) -> None:
    if cluster.mode is not Mode.SINGLE:
        coordinator = ps.coordinator(strategy) if cluster.mode is Mode.PARAMETER_SERVER else None
        loop.fit(
            strategy, plan.model, train_data, steps, epochs, batch_size, callbacks, coordinator
        )
        return
    plan.model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=validation,
        callbacks=callbacks,
        shuffle=False,  # the data set shuffles itself (Keras cannot shuffle a Dataset)
        verbose=0,
    )


def batched(dataset: Any, batch_size: int, steps_per_epoch: int | None) -> tuple[Any, int]:
    """The batched training data and the steps of one epoch. Full batches only, so every replica
    gets the same share of each step."""
    data = dataset.batch(batch_size, drop_remainder=True)
    if steps_per_epoch:
        return data.repeat(), steps_per_epoch
    count = int(data.cardinality())
    if count in (tf.data.INFINITE_CARDINALITY, tf.data.UNKNOWN_CARDINALITY):
        raise UserModelError("the training data set has no known size: pass --steps-per-epoch")
    if count == 0:
        raise UserModelError(f"the training data set has less than one batch of {batch_size}")
    return data, count


def strategy_name(strategy: Any) -> str:
    replicas = int(strategy.num_replicas_in_sync)
    return f"{type(strategy).__name__} with {replicas} replica{'s' * (replicas != 1)}"


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `modelship train`")
