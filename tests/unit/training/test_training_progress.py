"""The progress callback counts steps across epochs (and from a resumed epoch) and publishes the
gauges the operator scrapes."""

from __future__ import annotations

from modelship_server.training.progress import Progress, ProgressCallback, ProgressMetrics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def samples(metrics: ProgressMetrics) -> dict[tuple[str, str], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, s.labels.get("name", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_steps_count_across_epochs_and_metrics_are_published() -> None:
    progress, metrics = Progress(), ProgressMetrics()
    callback = ProgressCallback(progress, steps_per_epoch=5, epochs=3, metrics=metrics)
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(4, {"loss": 0.7, "accuracy": 0.5})
    callback.on_epoch_end(0, {"loss": 0.6, "accuracy": 0.55})
    callback.on_epoch_begin(1)
    callback.on_train_batch_end(1, {"loss": 0.4, "accuracy": 0.8, "note": "text"})
    seen = samples(metrics)
    assert seen[("modelship_training_step", "")] == 7
    assert seen[("modelship_training_total_steps", "")] == 15
    assert seen[("modelship_training_epoch", "")] == 1
    assert seen[("modelship_training_loss", "")] == 0.4
    assert seen[("modelship_training_metric", "accuracy")] == 0.8
    assert progress.as_dict()["metrics"] == {"accuracy": 0.8}


def test_a_resumed_run_starts_at_its_restored_epoch() -> None:
    progress = Progress()
    callback = ProgressCallback(progress, steps_per_epoch=10, epochs=5, metrics=None)
    callback.on_epoch_begin(3)  # BackupAndRestore set the initial epoch to 3
    assert (progress.step, progress.epoch) == (30, 3)
    callback.on_train_batch_end(0, {"loss": float("nan")})
    assert progress.step == 31
    assert progress.loss is None  # not a number: not reported


def test_the_first_scrape_shows_the_restored_position_and_the_plan() -> None:
    """Before the first step (a resumed run restoring its checkpoint), not 0 of 0."""
    metrics = ProgressMetrics()
    ProgressCallback(Progress(step=30, epoch=3), steps_per_epoch=10, epochs=5, metrics=metrics)
    seen = samples(metrics)
    assert seen[("modelship_training_step", "")] == 30
    assert seen[("modelship_training_epoch", "")] == 3
    assert seen[("modelship_training_total_steps", "")] == 50
