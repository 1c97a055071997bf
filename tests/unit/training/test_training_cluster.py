"""Which role and strategy TF_CONFIG gives a task, and which task exports."""

from __future__ import annotations

import json

import pytest
from modelship_server.training.cluster import ConfigError, Mode, from_tf_config


def config(cluster: dict[str, list[str]], role: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": role, "index": index}})


WORKERS = {"worker": ["w0:2222", "w1:2222"]}
CHIEF = {"chief": ["c0:2222"], "worker": ["w0:2222"]}
PS = {"chief": ["c0:2222"], "worker": ["w0:2222"], "ps": ["p0:2222"]}


def test_no_tf_config_is_one_process_that_exports() -> None:
    for raw in (None, "", "  "):
        cluster = from_tf_config(raw)
        assert cluster.mode is Mode.SINGLE
        assert cluster.exporter
        assert cluster.name == "single"


def test_workers_without_chief_train_with_mwms_and_worker_0_exports() -> None:
    first, second = (
        from_tf_config(config(WORKERS, "worker", 0)),
        from_tf_config(config(WORKERS, "worker", 1)),
    )
    assert first.mode is second.mode is Mode.MULTI_WORKER
    assert first.exporter
    assert not second.exporter
    assert (first.name, second.name) == ("worker-0", "worker-1")


def test_with_a_chief_the_chief_exports() -> None:
    assert from_tf_config(config(CHIEF, "chief", 0)).exporter
    assert not from_tf_config(config(CHIEF, "worker", 0)).exporter
    assert from_tf_config(config(CHIEF, "worker", 0)).mode is Mode.MULTI_WORKER


def test_ps_in_the_cluster_means_parameter_server_training() -> None:
    for role in ("chief", "worker", "ps"):
        assert from_tf_config(config(PS, role, 0)).mode is Mode.PARAMETER_SERVER
    assert from_tf_config(config(PS, "chief", 0)).exporter
    assert not from_tf_config(config(PS, "ps", 0)).exporter


def test_one_worker_alone_needs_no_collectives() -> None:
    cluster = from_tf_config(config({"worker": ["w0:2222"]}, "worker", 0))
    assert cluster.mode is Mode.SINGLE
    assert cluster.exporter


def test_the_evaluator_is_outside_the_cluster() -> None:
    cluster = from_tf_config(config(WORKERS, "evaluator", 0))
    assert cluster.task_type == "evaluator"
    assert not cluster.exporter


def test_addresses_may_be_given_by_index() -> None:
    raw = config({"worker": {"1": "w1:2222", "0": "w0:2222"}}, "worker", 1)  # type: ignore[dict-item]
    assert from_tf_config(raw).roles["worker"] == ["w0:2222", "w1:2222"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        (config(WORKERS, "worker", 2), "not in the cluster"),
        (config(WORKERS, "master", 0), "task type"),
        (config({"worker": ["w0"], "ps": ["p0"]}, "worker", 0), "needs a chief"),
        (config({"trainer": ["t0"]}, "worker", 0), "role 'trainer'"),
        (json.dumps({"cluster": WORKERS, "task": {"type": "worker", "index": "x"}}), "number"),
    ],
)
def test_unusable_tf_config_is_a_config_error(raw: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        from_tf_config(raw)
