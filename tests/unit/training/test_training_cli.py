"""`modelship train`'s command line, the user-function loading and the termination message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelship_server.commands import build_parser, main
from modelship_server.training import termination
from modelship_server.training.args import DEFAULT_METRICS_PORT
from modelship_server.training.plan import UserModelError, check_plan, load_function


def test_train_takes_the_termination_log_the_local_cluster_appends() -> None:
    args = build_parser().parse_args(
        ["train", "--model", "m:f", "--termination-log=/tmp/x", "--epochs", "3"]
    )
    assert args.command == "train"
    assert args.termination_log == Path("/tmp/x")
    assert args.epochs == 3
    assert args.batch_size == 32
    assert args.steps_per_epoch is None


def test_settings_come_from_the_operators_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_POD_IP", "10.1.2.3")
    monkeypatch.setenv("MODELSHIP_METRICS_PORT", "9555")
    monkeypatch.setenv("MODELSHIP_OUTPUT_URI", "s3://bucket/models/digits")
    args = build_parser().parse_args(["train", "--model", "m:f"])
    assert (args.metrics_host, args.metrics_port) == ("10.1.2.3", 9555)
    assert args.output == "s3://bucket/models/digits"


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELSHIP_POD_IP", "MODELSHIP_METRICS_PORT", "MODELSHIP_OUTPUT_URI"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["train", "--model", "m:f"])
    assert (args.metrics_host, args.metrics_port) == ("0.0.0.0", DEFAULT_METRICS_PORT)
    assert args.output is None


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["train", "--model", "m:f", "--epochs", "0"],
        ["train", "--model", "m:f", "--metrics-port", "70000"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_fetch_is_still_served() -> None:
    assert (
        build_parser().parse_args(["fetch", "--uri", "s3://b/m", "--dest", "/d"]).command == "fetch"
    )


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("no_colon", "module:function"),
        ("no_such_module_xyz:model", "cannot import"),
        ("json:no_such_function", "has no"),
        ("json:__doc__", "not a function"),
    ],
)
def test_unusable_model_targets(target: str, words: str) -> None:
    with pytest.raises(UserModelError, match=words):
        load_function(target)


def test_the_example_is_a_loadable_target() -> None:
    assert callable(load_function("modelship_server.training.examples.digits:model"))


def test_a_function_must_return_a_training_plan() -> None:
    with pytest.raises(UserModelError, match="not a TrainingPlan"):
        check_plan(("model", "data"), "m:f")


def test_success_message_is_json_with_the_export(tmp_path: Path) -> None:
    log = tmp_path / "log"
    progress = {"step": 4, "totalSteps": 4, "epoch": 1, "loss": 0.5, "metrics": {"accuracy": 0.9}}
    termination.success(log, "s3://b/m/17", progress)
    assert json.loads(log.read_text()) == {"exportedModelUri": "s3://b/m/17", "progress": progress}


def test_failure_message_is_one_redacted_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    log = tmp_path / "log"
    termination.failure(log, "cannot write:\nvery-secret-value https://u:p@h/x?sig=1")
    text = log.read_text()
    assert "very-secret-value" not in text
    assert "sig=1" not in text
    assert "u:p@" not in text
    assert text.count("\n") == 1
