"""The GPU path without a GPU: finding GPUs, pinning workers, the GPU flags, memory settings.

What needs a real GPU (TensorFlow placing ops on it, the allocator honouring the options,
throughput) is checked by bench/gpu_check.sh on a GPU machine.
"""

from __future__ import annotations

import ast
import logging
import types
from pathlib import Path
from typing import Any

import pytest
from modelship_server import cli, workers
from modelship_server.batching_file import format_batching
from modelship_server.config_files import parse_batching
from modelship_server.core.config import BatchingConfig
from modelship_server.runtime import devices
from tensorflow.core.protobuf import config_pb2

ROOT = Path(__file__).resolve().parents[3]
HALF_PLUS_TWO = ROOT.parent / "shared" / "testdata" / "tf-serving" / "saved_model_half_plus_two_cpu"


@pytest.fixture(autouse=True)
def _fresh_devices() -> Any:
    """`devices.configure` sets process-wide state; every test starts from the defaults."""
    yield
    devices._Applied.memory = devices.GpuMemory()


def _gpus(monkeypatch: pytest.MonkeyPatch, *found: str) -> None:
    monkeypatch.setattr(cli.workers, "visible_gpus", lambda: tuple(found))


# -- finding GPUs without TensorFlow ----------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("0", ("0",)),
        ("1,0", ("1", "0")),
        (" 2 , 3 ", ("2", "3")),
        ("", ()),
        ("-1", ()),
        ("0,-1,2", ("0",)),  # CUDA stops at the first invalid entry
        ("0,,1", ("0",)),
        ("GPU-8f6a2b1c-0d3e-4f5a-9b7c-1d2e3f4a5b6c", ("GPU-8f6a2b1c-0d3e-4f5a-9b7c-1d2e3f4a5b6c",)),
        ("MIG-GPU-8f6a2b1c/1/0,1", ("MIG-GPU-8f6a2b1c/1/0", "1")),
        ("nope", ()),
    ],
)
def test_cuda_visible_devices_is_what_cuda_shows(
    listed: str, expected: tuple[str, ...], tmp_path: Path
) -> None:
    (tmp_path / "nvidia0").touch()  # ignored: the variable, when set, is what CUDA honours
    assert workers.visible_gpus({"CUDA_VISIBLE_DEVICES": listed}, tmp_path) == expected


def test_without_the_variable_the_device_nodes_are_counted(tmp_path: Path) -> None:
    for name in ("nvidia3", "nvidia7", "nvidiactl", "nvidia-uvm", "nvidia-modeset", "null"):
        (tmp_path / name).touch()
    (tmp_path / "nvidia-caps").mkdir()
    # A container gets its GPUs' host numbers; CUDA numbers what it sees from 0.
    assert workers.visible_gpus({}, tmp_path) == ("0", "1")
    assert workers.visible_gpus({"NVIDIA_VISIBLE_DEVICES": "all"}, tmp_path) == ("0", "1")


def test_no_device_nodes_no_gpus(tmp_path: Path) -> None:
    assert workers.visible_gpus({}, tmp_path) == ()
    assert workers.visible_gpus({}, tmp_path / "missing") == ()


def test_the_supervisor_side_imports_no_tensorflow() -> None:
    """workers.py runs in the supervisor; cli.py and devices.py are imported before TensorFlow."""
    for path in ("workers.py", "cli.py", "runtime/devices.py"):
        tree = ast.parse((ROOT / "model_server" / path).read_text())
        top: list[str] = []
        for node in tree.body:
            if isinstance(node, ast.Import):
                top += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                top.append(node.module or "")
        assert not [name for name in top if name.startswith("tensorflow")], path


# -- pinning workers --------------------------------------------------------------------------


def test_each_worker_gets_one_gpu_round_robin() -> None:
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"}
    pinned = [
        workers.worker_env(base, i, 4, "/w", ("0", "1"))["CUDA_VISIBLE_DEVICES"] for i in range(4)
    ]
    assert pinned == ["0", "1", "0", "1"]
    env = workers.worker_env(base, 1, 2, "/w", ("GPU-a", "GPU-b"))
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-b"
    assert (env["MODELSHIP_WORKER_INDEX"], env["MODELSHIP_WORKER_COUNT"]) == ("1", "2")
    assert env["PATH"] == "/bin"


def test_without_gpus_the_environment_is_left_alone() -> None:
    env = workers.worker_env({"PATH": "/bin"}, 0, 2, "/w")
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert env["MODELSHIP_WORKER_DIR"] == "/w"


def test_the_supervisor_starts_each_worker_on_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, str]] = []

    class FakePopen:
        pid = 4242

        def __init__(self, cmd: list[str], env: dict[str, str], **_: object) -> None:
            assert cmd[-1] == "--workers=1"
            started.append(env)

    monkeypatch.setattr(workers.subprocess, "Popen", FakePopen)
    supervisor = workers.Supervisor(["--workers=0"], 3, [], gpus=("0", "1"))
    try:
        for index in range(3):
            supervisor._start(index)
    finally:
        workers.shutil.rmtree(supervisor._folder, ignore_errors=True)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in started] == ["0", "1", "0"]


# -- flags ------------------------------------------------------------------------------------


def test_auto_workers_are_one_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.workers, "cpu_count", lambda: 8)
    _gpus(monkeypatch, "0", "1")
    for flag in ("--workers=0", "--workers=auto"):
        settings = cli.parse(["--model_base_path=/m", flag])
        assert (settings.workers, settings.gpus, settings.intra_op_threads) == (2, ("0", "1"), 4)
    # An explicit count wins; the supervisor then shares the GPUs round robin.
    assert cli.parse(["--model_base_path=/m", "--workers=4"]).workers == 4
    assert cli.parse(["--model_base_path=/m"]).workers == 1
    _gpus(monkeypatch)
    assert cli.parse(["--model_base_path=/m", "--workers=auto"]).workers == 8


def test_gpu_memory_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, "0")
    default = cli.parse(["--model_base_path=/m"])
    assert default.gpu_memory == devices.GpuMemory(growth=False, fraction=0.0)
    assert default.gpu_memory.is_default
    settings = cli.parse(
        ["--model_base_path=/m", "--per_process_gpu_memory_fraction=0.4", "--gpu_memory_growth"]
    )
    assert settings.gpu_memory == devices.GpuMemory(growth=True, fraction=0.4)
    assert "per_process_gpu_memory_fraction" not in cli.UNSUPPORTED
    off = cli.parse(["--model_base_path=/m", "--gpu_memory_growth=false"])
    assert not off.gpu_memory.growth


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--per_process_gpu_memory_fraction=1.5"], "must be between 0 and 1"),
        (["--per_process_gpu_memory_fraction=-0.1"], "must be between 0 and 1"),
        (["--per_process_gpu_memory_fraction=half"], "invalid float value"),
        (["--gpu_memory_growth=maybe"], "expected true or false"),
        (["--workers=many"], "expected a count or auto"),
        (["--gpu_memory_fraction=0.5"], "unrecognized arguments"),
    ],
)
def test_bad_gpu_flags_are_refused_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse(["--model_base_path=/m", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert argv[0].split("=")[0] in err


def test_batching_defaults_for_a_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _gpus(monkeypatch, "0")
    assert cli.parse(["--model_base_path=/m", "--enable_batching"]).batching == cli.GPU_BATCHING
    # A batching file wins as a whole: its fields, and the usual defaults for the rest.
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 16 }\n")
    from_file = cli.parse(
        ["--model_base_path=/m", "--enable_batching", f"--batching_parameters_file={path}"]
    ).batching
    assert from_file == BatchingConfig(max_batch_size=16)
    assert cli.parse(["--model_base_path=/m"]).batching is None
    _gpus(monkeypatch)
    assert cli.parse(["--model_base_path=/m", "--enable_batching"]).batching == BatchingConfig()


def test_gpu_batching_defaults_are_a_valid_batching_file() -> None:
    """What the operator could write for a GPU pod parses back the same, checks included."""
    assert parse_batching(format_batching(cli.GPU_BATCHING)) == cli.GPU_BATCHING
    assert cli.GPU_BATCHING.padded_size(3) == 4
    assert cli.GPU_BATCHING.padded_size(128) == 128


# -- main: memory settings before any model, GPUs to the supervisor ---------------------------


def _fake_main(monkeypatch: pytest.MonkeyPatch, *found: str) -> list[object]:
    calls: list[object] = []
    _gpus(monkeypatch, *found)
    monkeypatch.setattr(
        cli.devices, "configure", lambda memory: calls.append(("configure", memory))
    )

    def fake_import(name: str) -> object:
        assert name == "modelship_server.app"
        calls.append("import app")
        return types.SimpleNamespace(run=lambda settings: calls.append("run") or 0)

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    monkeypatch.setattr(
        cli.workers,
        "supervise",
        lambda argv, count, ports, gpus: calls.append(("supervise", count, gpus)) or 0,
    )
    return calls


def test_memory_settings_are_applied_before_the_models_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _fake_main(monkeypatch, "0")
    assert cli.main(["--model_base_path=/m", "--gpu_memory_growth"]) == 0
    assert calls == [("configure", devices.GpuMemory(growth=True)), "import app", "run"]


def test_the_supervisor_gets_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_main(monkeypatch, "0", "1")
    monkeypatch.setattr(cli.workers, "cpu_count", lambda: 8)
    assert cli.main(["--model_base_path=/m", "--workers=auto", "--rest_api_port=0"]) == 0
    assert calls == [("supervise", 2, ("0", "1"))]  # no TensorFlow in the supervisor


def test_memory_flags_without_a_gpu_say_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _fake_main(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["--model_base_path=/m", "--per_process_gpu_memory_fraction=0.5"]) == 0
    assert calls == ["import app", "run"]
    assert "--per_process_gpu_memory_fraction change nothing" in caplog.text


# -- devices.configure through a stand-in tf ----------------------------------------------------


class FakeTf:
    """The slice of the tensorflow module `devices.configure` uses, recording the calls."""

    def __init__(self, gpus: list[str]) -> None:
        self.calls: list[tuple[Any, ...]] = []
        calls = self.calls

        class Session:
            def __init__(self, config: config_pb2.ConfigProto) -> None:
                calls.append(
                    (
                        "session",
                        config.gpu_options.allow_growth,
                        config.gpu_options.per_process_gpu_memory_fraction,
                    )
                )

            def close(self) -> None:
                calls.append(("close",))

        physical = [types.SimpleNamespace(name=f"/physical_device:GPU:{g}") for g in gpus]
        self.config = types.SimpleNamespace(
            list_physical_devices=lambda kind: calls.append(("list", kind)) or physical,
            experimental=types.SimpleNamespace(
                set_memory_growth=lambda dev, on: calls.append(("growth", dev.name, on))
            ),
        )
        self.compat = types.SimpleNamespace(
            v1=types.SimpleNamespace(ConfigProto=config_pb2.ConfigProto, Session=Session)
        )


def test_growth_and_fraction_are_set_before_the_gpus_open() -> None:
    tf = FakeTf(["0", "1"])
    names = devices.configure(devices.GpuMemory(growth=True, fraction=0.5), tf)
    assert names == ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert tf.calls == [
        ("list", "GPU"),
        ("growth", "/physical_device:GPU:0", True),
        ("growth", "/physical_device:GPU:1", True),
        ("session", True, 0.5),  # the allocator is made now, with these options
        ("close",),
    ]
    assert devices.current() == devices.GpuMemory(growth=True, fraction=0.5)


def test_fraction_alone_opens_the_gpus_with_it() -> None:
    tf = FakeTf(["0"])
    devices.configure(devices.GpuMemory(fraction=0.25), tf)
    assert tf.calls == [("list", "GPU"), ("session", False, 0.25), ("close",)]


def test_defaults_leave_tensorflow_alone() -> None:
    tf = FakeTf(["0"])
    devices.configure(devices.GpuMemory(), tf)
    assert tf.calls == [("list", "GPU")]


def test_a_gpu_tensorflow_cannot_see_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    tf = FakeTf([])
    with caplog.at_level(logging.WARNING):
        assert devices.configure(devices.GpuMemory(growth=True), tf) == []
    assert tf.calls == [("list", "GPU")]
    assert "tensorflow[and-cuda]" in caplog.text
    assert "GPU memory flags change nothing" in caplog.text


def test_every_model_session_gets_the_settings() -> None:
    config = config_pb2.ConfigProto()
    devices.apply_to_session(config)
    assert config.gpu_options == config_pb2.GPUOptions()  # nothing set by default
    devices.configure(devices.GpuMemory(growth=True, fraction=0.3), FakeTf(["0"]))
    devices.apply_to_session(config)
    assert config.gpu_options.allow_growth
    assert config.gpu_options.per_process_gpu_memory_fraction == pytest.approx(0.3)


@pytest.mark.skipif(not HALF_PLUS_TWO.exists(), reason=f"{HALF_PLUS_TWO} not found")
def test_a_loaded_model_session_carries_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelship_server.runtime import savedmodel  # noqa: PLC0415 (imports TensorFlow)

    seen: list[config_pb2.ConfigProto] = []
    real = savedmodel.tf.compat.v1.Session

    def session(graph: Any, config: config_pb2.ConfigProto) -> Any:
        seen.append(config)
        return real(graph=graph, config=config)

    monkeypatch.setattr(savedmodel.tf.compat.v1, "Session", session)
    devices.configure(devices.GpuMemory(growth=True, fraction=0.2), FakeTf(["0"]))
    servable = savedmodel.load(str(HALF_PLUS_TWO / "00000123"), intra_op_threads=1)
    try:
        assert seen[0].gpu_options.allow_growth
        assert seen[0].gpu_options.per_process_gpu_memory_fraction == pytest.approx(0.2)
        assert seen[0].intra_op_parallelism_threads == 1
    finally:
        servable.close()
