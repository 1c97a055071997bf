"""Command line, text-proto config files and the metrics exposition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelship_server import cli
from modelship_server.config_files import (
    ConfigError,
    parse_batching,
    parse_model_config,
    parse_monitoring,
)
from modelship_server.core.config import PolicyKind
from modelship_server.core.metrics import ServerMetrics

MODEL_CONFIG = """
model_config_list {
  config {
    name: "a"
    base_path: "/models/a"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
  config { name: "b" base_path: "/models/b" model_version_policy { latest { num_versions: 2 } } }
  config { name: "c" base_path: "/models/c" model_version_policy { all {} } }
}
"""


def test_model_config_file() -> None:
    a, b, c = parse_model_config(MODEL_CONFIG)
    assert (a.name, a.base_path, a.policy.kind, a.policy.versions) == (
        "a",
        "/models/a",
        PolicyKind.SPECIFIC,
        (1, 2),
    )
    assert a.label_map() == {"stable": 1}
    assert (b.policy.kind, b.policy.num_versions) == (PolicyKind.LATEST, 2)
    assert c.policy.kind is PolicyKind.ALL
    for bad in ("model_config_list { nonsense: 1 }", 'model_config_list { config { name: "x" } }'):
        with pytest.raises(ConfigError):
            parse_model_config(bad)


def test_batching_parameters_file() -> None:
    config = parse_batching(
        "max_batch_size { value: 32 } batch_timeout_micros { value: 500 }"
        " max_enqueued_batches { value: 7 } num_batch_threads { value: 2 }"
        " allowed_batch_sizes: 8 allowed_batch_sizes: 32"
    )
    assert (config.max_batch_size, config.batch_timeout_micros) == (32, 500)
    assert (config.max_enqueued_batches, config.num_batch_threads) == (7, 2)
    assert config.padded_size(3) == 8
    assert config.padded_size(9) == 32
    for bad in (
        "max_batch_size { value: 0 }",
        "max_batch_size { value: 16 } allowed_batch_sizes: 8",
        "max_batch_size: 3",
    ):
        with pytest.raises(ConfigError):
            parse_batching(bad)


def test_monitoring_config_file() -> None:
    assert parse_monitoring('prometheus_config { enable: true path: "/m" }') == "/m"
    assert parse_monitoring("prometheus_config { enable: true }") == (
        "/monitoring/prometheus/metrics"
    )
    assert parse_monitoring("prometheus_config { enable: false }") is None


def test_command_line(tmp_path: Path) -> None:
    batching = tmp_path / "b.config"
    batching.write_text("max_batch_size { value: 16 }")
    settings = cli.parse(
        [
            "--port=9000",
            "--rest_api_port",
            "9001",
            "--model_name=m",
            "--model_base_path=/models/m",
            "--enable_batching=true",
            f"--batching_parameters_file={batching}",
            "--rest_api_timeout_in_ms=0",
            "--rest_api_num_threads=8",
        ]
    )
    assert (settings.grpc_port, settings.rest_port) == (9000, 9001)
    assert [(m.name, m.base_path) for m in settings.models] == [("m", "/models/m")]
    assert settings.batching is not None
    assert settings.batching.max_batch_size == 16
    assert settings.rest_timeout_seconds is None
    assert settings.metrics_path == "/monitoring/prometheus/metrics"
    assert cli.parse(["--model_base_path=/m", "--enable_batching=false"]).batching is None
    assert cli.parse(["--model_base_path=/m"]).models[0].name == "default"


def test_workers_share_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.workers, "cpu_count", lambda: 8)
    monkeypatch.setattr(cli.workers, "visible_gpus", lambda: ())  # a GPU host: one per GPU
    one = cli.parse(["--model_base_path=/m"])
    assert (one.workers, one.intra_op_threads) == (1, 0)  # TensorFlow's own default
    auto = cli.parse(["--model_base_path=/m", "--workers=0"])
    assert (auto.workers, auto.intra_op_threads) == (8, 1)
    four = cli.parse(["--model_base_path=/m", "--workers=4"])
    assert (four.workers, four.intra_op_threads) == (4, 2)
    chosen = cli.parse(
        ["--model_base_path=/m", "--workers=4", "--tensorflow_intra_op_parallelism=3"]
    )
    assert chosen.intra_op_threads == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model_base_path=/m", "--nope=1"], "unrecognized arguments"),
        (["--model_base_path=/m", "--grpc_socket_path=/s"], "not supported"),
        (["--model_base_path=/m", "--model_config_file=/c"], "cannot both"),
        (["--model_base_path=/m", "--port=0", "--rest_api_port=0"], "nothing would listen"),
        (["--model_base_path=/m", "--enable_batching=maybe"], "true or false"),
        (["--model_base_path=/m", "--batching_parameters_file=/b"], "needs --enable_batching"),
        (["--model_base_path=/m", "--workers=-1"], "--workers must be 0"),
    ],
)
def test_bad_command_lines(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_metrics_keep_tf_serving_names() -> None:
    metrics = ServerMetrics()
    metrics.request_count.inc(("m", "OK"))
    metrics.request_count.inc(("m", "OK"))
    metrics.request_latency.observe(("m", "predict", "REST"), 150.0)
    metrics.inflight.add(("m",), 3)
    text = metrics.registry.render().decode()
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 2' in text
    labels = 'model_name="m",API="predict",entrypoint="REST"'
    assert f":tensorflow:serving:request_latency_count{{{labels}}} 1" in text
    assert 'le="+Inf"} 1' in text
    assert 'modelship_server_inflight_requests{model_name="m"} 3' in text


def test_metrics_of_other_workers_are_summed() -> None:
    mine, theirs = ServerMetrics(), ServerMetrics()
    mine.request_count.inc(("m", "OK"), 2)
    theirs.request_count.inc(("m", "OK"), 3)
    theirs.request_count.inc(("other", "ERROR"))
    mine.request_latency.observe(("m", "predict", "REST"), 15.0)
    theirs.request_latency.observe(("m", "predict", "REST"), 1e9)
    theirs.inflight.add(("m",), 4)
    mine.model_versions.set(("m",), 1)
    theirs.model_versions.set(("m",), 1)
    # Through JSON, as the snapshot files carry them.
    peer = json.loads(json.dumps(theirs.registry.snapshot()))
    text = mine.registry.render([peer]).decode()
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 5' in text
    assert ':tensorflow:serving:request_count{model_name="other",status="ERROR"} 1' in text
    labels = 'model_name="m",API="predict",entrypoint="REST"'
    assert f":tensorflow:serving:request_latency_count{{{labels}}} 2" in text
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="18"}} 1' in text
    assert f":tensorflow:serving:request_latency_sum{{{labels}}} 1000000015" in text
    assert 'modelship_server_inflight_requests{model_name="m"} 4' in text
    assert 'modelship_server_model_versions_available{model_name="m"} 1' in text
    # Without peers, only this process's own values.
    alone = mine.registry.render().decode()
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 2' in alone
