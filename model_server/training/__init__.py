"""`modelship train`: the program a TrainingJob's pods run.

    modelship train --model MODULE:FUNCTION [--epochs N] [--batch-size N] [--steps-per-epoch N]
                    [--output URI] [--checkpoint-dir DIR] [--termination-log FILE]

The user function (the contract)
--------------------------------
`--model pkg.module:function` names a function `function(context: TrainingContext) ->
TrainingPlan` (both in `modelship_server.training.plan`). The trainer calls it once per task,
inside `context.strategy.scope()`, so every variable it creates (model, optimizer) is
distributed. It must:

- build and compile a `tf.keras.Model` (optimizer, loss, metrics) and return it as `model`;
- return `train`, an UNBATCHED `tf.data.Dataset` of `(features, label)` pairs. The trainer
  batches it with the global batch size (`--batch-size`, all replicas together; full batches
  only) and shards it across workers; shuffle inside the function, with a fixed seed so every
  worker shuffles alike. One epoch is one pass unless `--steps-per-epoch` is given (then the data
  set repeats);
- optionally return `validation`, unbatched as well.

`context` carries `strategy`, `global_batch_size`, `epochs`, `num_replicas` and `cluster` (this
task's role). `modelship_server.training.examples.digits:model` is a complete example.

Strategies, from TF_CONFIG
--------------------------
- none (or a one-task cluster): the default strategy, one process, Keras `fit()` (validation
  data included);
- chief and/or workers: MultiWorkerMirroredStrategy, every task trains in lockstep;
- with ps: ParameterServerStrategy. Workers and parameter servers run a `tf.distribute.Server`
  and block until the pod is deleted; the chief coordinates with a ClusterCoordinator.
  Both distributed modes train in `loop.py`'s loop, not `fit()`: Keras 3's fit() fails under
  MultiWorkerMirroredStrategy and does not drive a coordinator. The loop reports the loss and
  the compiled metrics given by name that are functions of (labels, predictions), such as
  "accuracy"; it ignores `validation`;
- an evaluator task (outside the cluster) runs sidecar evaluation (`evaluation.py`): it builds
  the model under the default strategy and scores each new checkpoint of the exporting task on
  `validation` (required: without it the evaluator exits 2), until the exporter has finished.

Results
-------
The exporting task (the chief, else worker 0, or the single process) serves progress as
Prometheus text on `$MODELSHIP_POD_IP:$MODELSHIP_METRICS_PORT/metrics` (default 0.0.0.0:9400, 0 =
off), exports the SavedModel to `<output>/<version>` (version = Unix seconds) and writes the
termination message `{"exportedModelUri": ..., "progress": {...}}`. Every task keeps
BackupAndRestore state in `<checkpoint dir>/<task>-<index>`, so a restarted task resumes at the
last finished epoch; MultiWorkerMirroredStrategy workers first agree on one epoch (the lowest any
of them saved) so they run the same steps.

For evaluators, the exporting task also writes `tf.train.Checkpoint(model=...)` at each epoch's
end to `<checkpoint dir>/eval/epoch-<n>` (announced by `eval/latest.json`; the last two are kept)
and, after a successful export, `eval/DONE` naming the last one. An evaluator reads them, so the
checkpoint directory must be shared with it; it serves `modelship_training_eval_metric{name=...}`
(loss and compiled metrics) and `modelship_training_eval_epoch` on its own metrics endpoint, logs
one line per evaluation, and exits 0 once DONE's checkpoint is evaluated.

Exit codes: 0 done, 1 other failure, 2 bad arguments / TF_CONFIG / --model, 138 a peer was lost
mid-training (restart all tasks; they resume from their checkpoints).
"""
