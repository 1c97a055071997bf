"""Throughput and latency of modelship-server against Python peers, side by side in one run.

    .venv/bin/python bench/server_throughput/run.py [--duration 8] [--concurrency 1 16 64]

Servers, each serving the same two SavedModels (an MLP 784-1024-1024-10 built here, and TF
Serving's half_plus_two): modelship-server with one process per CPU (`--workers=0`; REST TF
Serving API and v2, gRPC TF Serving API and v2) and as one process (REST v1 only, for
comparison), KServe's Python ModelServer with a custom Model, MLServer with a custom runtime
(with and without adaptive batching), and the in-process limit (the signature called directly,
batch 1 and 64).
All servers run at once and take turns for each measurement, `--rounds` times; medians count.
Load comes from compiled tools: wrk for REST, h2load (nghttp2) for gRPC, sending the same
pre-framed request bytes a gRPC client would; every gRPC answer's DATA is checked against the
size of a correct response, so a call answered with an error status counts as an error. `--ghz`
adds rows measured with ghz, a Go gRPC client, as a cross-check: on two cores ghz spends far more
CPU per call than the servers it measures, so its figures measure ghz as much as the server.
The peers live in their own venvs, created here under the cache folder (not the project's
lock), as are ghz and the work files.

`modelship-default` is modelship-server started as a user starts it: `--enable_batching` and
nothing else (one process, the server's batching defaults); its REST v1 tails are the ones the
issue-13 table checks. After the tables, that table gives every target as a ratio, per round
where the target says "in every round".

`modelship-<N>proc` runs modelship-server with `--workers=N`. `--server-arg` adds flags to
every modelship-server; `--modelship-batching=server` leaves out the bench's batching file,
so the server's own defaults apply (with a GPU, its GPU defaults). With `--gpu` (see
bench/gpu_check.sh) this process and the peers take GPU memory as they need it, since all
servers share the GPU at once, and the peers' venvs get `tensorflow[and-cuda]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get("MODELSHIP_CACHE", Path.home() / ".cache" / "modelship"))
TESTDATA = ROOT.parent / "shared" / "testdata" / "tf-serving"
UV = CACHE / "uv-venv" / "bin" / "uv"
# mlserver 1.7.1's inference workers call asyncio.get_event_loop() in a fresh process, which
# uvloop >= 0.22 refuses; pin the uvloop it was released with.
PEERS = {"kserve": ["kserve==0.21.0"], "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0"]}
TF = "tensorflow==2.21.0"
GHZ = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
MLP_ROW = 784


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port below Linux's ephemeral range, never the same one twice in a run.

    A port the kernel picks (bind to 0) comes from the range outgoing connections use too: one
    run lost a server that way (mlserver could not bind the port it was given, and the run
    ended when its readiness wait ran out).
    """
    while True:
        port = random.randrange(20000, 32000)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port


# -- tools and peers --------------------------------------------------------------------------


def peer_python(name: str, gpu: bool = False) -> Path:
    venv = CACHE / f"bench-venv-{name}{'-gpu' if gpu else ''}"
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating the {name} venv at {venv}")
        subprocess.run([str(UV), "venv", "-q", "-p", "3.11", str(venv)], check=True)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        tf = TF.replace("tensorflow==", "tensorflow[and-cuda]==") if gpu else TF
        subprocess.run([str(UV), "pip", "install", "-q", *PEERS[name], tf], check=True, env=env)
    return python


def grow_gpu_memory() -> None:
    """This process's TensorFlow (the MLP, the in-process limit) takes GPU memory as it needs
    it: by default it would take all of it, and the servers started next would find none."""
    import tensorflow as tf  # noqa: PLC0415

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise SystemExit(
            "--gpu: TensorFlow sees no GPU (the CUDA libraries come with "
            f"'{TF.replace('tensorflow==', 'tensorflow[and-cuda]==')}')"
        )
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    log(f"GPUs: {', '.join(g.name for g in gpus)}")


def ghz() -> Path | None:
    binary = CACHE / "bench-bin" / "ghz"
    if not binary.exists() and shutil.which("go"):
        log("building ghz")
        env = {**os.environ, "GOBIN": str(binary.parent)}
        subprocess.run(["go", "install", GHZ], check=False, env=env)
    return binary if binary.exists() else None


# -- models and payloads ----------------------------------------------------------------------


def build_models(work: Path) -> dict[str, Path]:
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    mlp = work / "models" / "mlp"
    if not (mlp / "1" / "saved_model.pb").exists():
        log("building the MLP SavedModel")
        tf.random.set_seed(0)

        class Mlp(tf.Module):  # type: ignore[misc]
            def __init__(self) -> None:
                sizes = [(MLP_ROW, 1024), (1024, 1024), (1024, 10)]
                self.w = [tf.Variable(tf.random.normal(s, stddev=0.03)) for s in sizes]
                self.b = [tf.Variable(tf.zeros([s[1]])) for s in sizes]

            @tf.function(input_signature=[tf.TensorSpec([None, MLP_ROW], tf.float32, name="x")])  # type: ignore[misc]
            def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
                h = tf.nn.relu(x @ self.w[0] + self.b[0])
                h = tf.nn.relu(h @ self.w[1] + self.b[1])
                return {"y": tf.nn.softmax(h @ self.w[2] + self.b[2])}

        module = Mlp()
        tf.saved_model.save(module, str(mlp / "1"), signatures={"serving_default": module.serve})
    hpt = work / "models" / "half_plus_two"
    if not hpt.exists():
        source = TESTDATA / "saved_model_half_plus_two_cpu"
        if not source.exists():
            raise SystemExit(f"half_plus_two not found at {source} (../shared missing)")
        shutil.copytree(source, hpt)
    del np
    return {"mlp": mlp, "half_plus_two": hpt}


def row(model: str) -> list[float]:
    if model == "mlp":
        return [round((i % 97) / 97, 4) for i in range(MLP_ROW)]
    return [1.0]


def write_payloads(work: Path, models: list[str]) -> dict[tuple[str, str], Path]:
    """One request body per (model, wire format): TF Serving REST, v2 REST, gRPC binaries."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415
    from modelship_server.proto import grpc_predict_v2_pb2  # noqa: PLC0415
    from tensorflow_serving.apis import predict_pb2  # noqa: PLC0415

    out: dict[tuple[str, str], Path] = {}
    for model in models:
        values = row(model)
        v1 = work / f"{model}.v1.json"
        v1.write_text(json.dumps({"instances": [values]}))
        v2 = work / f"{model}.v2.json"
        v2.write_text(
            json.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [1, len(values)], "datatype": "FP32", "data": values}
                    ]
                }
            )
        )
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = model
        predict.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([values], dtype=np.float32)))
        tfs = work / f"{model}.tfs.bin"
        tfs.write_bytes(predict.SerializeToString())
        infer = grpc_predict_v2_pb2.ModelInferRequest(model_name=model)
        infer.inputs.add(name="x", datatype="FP32", shape=[1, len(values)])
        infer.raw_input_contents.append(np.array([values], dtype=np.float32).tobytes())
        v2g = work / f"{model}.v2grpc.bin"
        v2g.write_bytes(infer.SerializeToString())
        out.update(
            {(model, "v1"): v1, (model, "v2"): v2, (model, "tfs"): tfs, (model, "v2grpc"): v2g}
        )
    return out


def write_protoset(work: Path) -> Path:
    """A FileDescriptorSet for ghz from the Python descriptors (no .proto files are shipped)."""
    from google.protobuf import descriptor_pb2  # noqa: PLC0415
    from modelship_server.proto import grpc_predict_v2_pb2  # noqa: PLC0415
    from tensorflow_serving.apis import prediction_service_pb2  # noqa: PLC0415

    seen: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(fd: object) -> None:
        for dep in fd.dependencies:  # type: ignore[attr-defined]
            add(dep)
        if fd.name not in seen:  # type: ignore[attr-defined]
            proto = descriptor_pb2.FileDescriptorProto()
            fd.CopyToProto(proto)  # type: ignore[attr-defined]
            seen[fd.name] = proto  # type: ignore[attr-defined]

    add(prediction_service_pb2.DESCRIPTOR)
    add(grpc_predict_v2_pb2.DESCRIPTOR)
    path = work / "services.protoset"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=list(seen.values())).SerializeToString())
    return path


# -- servers ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    http: int
    grpc: int
    ready_path: str
    log: Path

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.http}{self.ready_path}", timeout=2
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.name} not ready:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes (its session: workers and children included)."""
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == self.proc.pid:  # session id
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _spawn(
    name: str, cmd: list[str], work: Path, *, http: int, grpc: int, ready: str, **kw: object
) -> Server:
    log_path = work / f"{name}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **kw.pop("env", {})}  # type: ignore[dict-item]
    proc = subprocess.Popen(
        cmd,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        **kw,  # type: ignore[arg-type]
    )
    server = Server(name, proc, http, grpc, ready, log_path)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def _model_config(work: Path, models: dict[str, Path]) -> Path:
    config = work / "modelship.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(f'  config {{ name: "{n}" base_path: "{p}" }}\n' for n, p in models.items())
        + "}\n"
    )
    return config


def _modelship(name: str, work: Path, models: dict[str, Path], *flags: str) -> Server:
    """modelship-server on free ports with the models and --enable_batching, plus flags."""
    http, grpc = free_port(), free_port()
    cmd = [
        str(Path(sys.executable).parent / "modelship-server"),
        f"--rest_api_port={http}",
        f"--port={grpc}",
        "--host=127.0.0.1",
        f"--model_config_file={_model_config(work, models)}",
        "--enable_batching",
        *flags,
    ]
    return _spawn(name, cmd, work, http=http, grpc=grpc, ready="/v2/health/ready")


def start_modelship_default(work: Path, models: dict[str, Path]) -> Server:
    """As a user starts it: the model config and --enable_batching, every other flag default."""
    return _modelship("modelship-default", work, models)


def start_modelship(
    work: Path,
    models: dict[str, Path],
    workers: int = 0,
    extra_args: tuple[str, ...] = (),
    batching_file: bool = True,
) -> Server:
    """workers 0: one server process per CPU, or per GPU ("modelship"); N: N processes."""
    batching = work / "batching.config"
    batching.write_text(
        # The same 64 rows / 2 ms as MLServer's adaptive batching below.
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "max_enqueued_batches { value: 1000 }\nnum_batch_threads { value: 1 }\n"
    )
    name = "modelship" if workers == 0 else f"modelship-{workers}proc"
    return _modelship(
        name,
        work,
        models,
        *([f"--batching_parameters_file={batching}"] if batching_file else []),
        f"--workers={workers}",
        *extra_args,
    )


# With --gpu every server shares the GPU at once: a peer taking all its memory would starve
# the others (modelship-server is given --gpu_memory_growth instead).
GPU_PEER_ENV = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}


def start_kserve(work: Path, models: dict[str, Path], gpu: bool = False) -> Server:
    http, grpc = free_port(), free_port()
    cmd = [
        str(peer_python("kserve", gpu)),
        str(HERE / "kserve_peer.py"),
        f"--http_port={http}",
        f"--grpc_port={grpc}",
    ]
    for name, path in models.items():
        cmd.append(f"--model={name}={_version_dir(path)}")
    ready = f"/v1/models/{next(iter(models))}"
    env = GPU_PEER_ENV if gpu else {}
    return _spawn("kserve", cmd, work, http=http, grpc=grpc, ready=ready, env=env)


def start_mlserver(
    work: Path, models: dict[str, Path], batching: bool, gpu: bool = False
) -> Server:
    name = "mlserver-batching" if batching else "mlserver"
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copy(HERE / "mlserver_runtime.py", folder / "mlserver_runtime.py")
    http, grpc = free_port(), free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {"http_port": http, "grpc_port": grpc, "metrics_port": free_port(), "host": "127.0.0.1"}
        )
    )
    for model, path in models.items():
        settings: dict[str, object] = {
            "name": model,
            "implementation": "mlserver_runtime.SavedModelRuntime",
            "parameters": {"uri": str(_version_dir(path))},
        }
        if batching:
            settings.update({"max_batch_size": 64, "max_batch_time": 0.002})
        (folder / model).mkdir()
        (folder / model / "model-settings.json").write_text(json.dumps(settings))
    mlserver = peer_python("mlserver", gpu).parent / "mlserver"
    return _spawn(
        name,
        [str(mlserver), "start", str(folder)],
        work,
        http=http,
        grpc=grpc,
        ready="/v2/health/ready",
        cwd=str(folder),
        env={"PYTHONPATH": str(folder), **(GPU_PEER_ENV if gpu else {})},
    )


def _version_dir(path: Path) -> Path:
    return sorted(p for p in path.iterdir() if p.name.isdigit())[-1]


# -- load generators --------------------------------------------------------------------------


Measured = tuple[float, float, float, int]  # req/s, p50 ms, p99 ms, errors
Cell = tuple[float, float, float, int, float]  # and the server's CPU µs per request


@dataclasses.dataclass
class Result:
    server: str
    api: str
    model: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rounds: list[Cell] = dataclasses.field(default_factory=list)
    cpu_us: float = 0.0  # the server's CPU time per request (all its processes), median


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(
    url: str, body: Path, concurrency: int, duration: int, work: Path
) -> tuple[float, float, float, int]:
    script = work / f"wrk-{body.stem}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()\n'
    )
    threads = min(concurrency, 2)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*?timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(errs.group(1)) if errs else 0)
    return rps, p50, p99, errors


def run_ghz(
    binary: Path,
    protoset: Path,
    call: str,
    target: str,
    data: Path,
    *,
    concurrency: int,
    duration: int,
) -> tuple[float, float, float, int]:
    cmd = [
        str(binary),
        "--insecure",
        "--protoset",
        str(protoset),
        "--call",
        call,
        "--binary-file",
        str(data),
        "-c",
        str(concurrency),
        "-z",
        f"{duration}s",
        "--connections",
        # Enough connections that the kernel spreads them over every worker process.
        str(min(concurrency, 16)),
        "--format",
        "json",
        target,
    ]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ghz failed: {done.stderr.decode(errors='replace')[-500:]}")
    out = json.loads(done.stdout.decode(errors="replace"))
    dist = {d["percentage"]: d["latency"] / 1e6 for d in out.get("latencyDistribution") or []}
    codes = out.get("statusCodeDistribution") or {}
    # ghz cancels the calls still in flight when the duration ends; those are not failures.
    errors = sum(v for k, v in codes.items() if k not in ("OK", "Canceled"))
    return float(out["rps"]), dist.get(50, 0.0), dist.get(99, 0.0), errors


def grpc_frame(work: Path, payload: Path) -> Path:
    """The request as it goes in a DATA frame: uncompressed flag, 32-bit length, message."""
    body = payload.read_bytes()
    framed = work / f"{payload.stem}.grpcframe"
    framed.write_bytes(b"\0" + len(body).to_bytes(4, "big") + body)
    return framed


def grpc_response_size(port: int, method: str, payload: Path) -> int:
    """DATA bytes of a correct answer (prefix and message), from one call by grpcio's client."""
    import grpc  # noqa: PLC0415

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = channel.unary_unary(f"/{method}")(payload.read_bytes(), timeout=30)
    return 5 + len(answer)


def run_h2load(
    port: int,
    method: str,
    framed: Path,
    expect: int,
    *,
    concurrency: int,
    duration: int,
    work: Path,
) -> Measured:
    """Unary gRPC calls from h2load over up to 16 connections (so they spread over the worker
    processes), each carrying concurrency/connections calls at once."""
    connections = min(concurrency, 16)
    log_file = work / "h2load.log"
    log_file.unlink(missing_ok=True)  # h2load appends to it
    cmd = [
        "h2load",
        f"-D{duration}",
        f"-c{connections}",
        f"-m{max(1, concurrency // connections)}",
        f"-t{min(2, connections)}",
        "-d",
        str(framed),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        f"--log-file={log_file}",
        f"http://127.0.0.1:{port}/{method}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def number(pattern: str) -> float:
        return float(re.search(pattern, out).group(1))  # type: ignore[union-attr]

    ok_http = int(number(r"status codes: (\d+) 2xx"))
    data = int(number(r"traffic: .*?, \S+ \((\d+)\) data"))
    done = int(number(r"requests: \d+ total, \d+ started, (\d+) done"))
    elapsed = number(r"finished in ([\d.]+)s")
    latencies = sorted(
        int(line.split("\t")[2]) / 1e3
        for line in log_file.read_text().splitlines()
        if line.split("\t")[1].startswith("2")
    )
    # An error status comes in trailers with HTTP 200 and no DATA: count answers by their bytes.
    answered = min(ok_http, data // expect)
    errors = done - answered
    rps = answered / elapsed
    if not latencies:
        return 0.0, 0.0, 0.0, errors
    return rps, _percentile(latencies, 50), _percentile(latencies, 99), errors


def _percentile(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def in_process_limit(models: dict[str, Path], duration: float) -> list[Result]:
    """The signature called directly in this process, no server: the ceiling for batch 1 and 64."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    results = []
    for model, path in models.items():
        fn = tf.saved_model.load(str(_version_dir(path))).signatures["serving_default"]
        _, kwargs = fn.structured_input_signature
        key = next(iter(kwargs))
        for batch in (1, 64):
            x = tf.constant(np.array([row(model)] * batch, dtype=np.float32))
            fn(**{key: x})
            calls, started = 0, time.perf_counter()
            while time.perf_counter() - started < duration:
                next(iter(fn(**{key: x}).values())).numpy()
                calls += 1
            elapsed = time.perf_counter() - started
            results.append(
                Result(
                    "in-process",
                    f"batch {batch}",
                    model,
                    1,
                    calls * batch / elapsed,
                    elapsed / calls * 1e3,
                    0.0,
                    0,
                )
            )
    return results


@dataclasses.dataclass
class Bench:
    work: Path
    payloads: dict[tuple[str, str], Path]
    protoset: Path
    ghz: Path | None
    duration: int
    concurrency: list[int]
    response_sizes: dict[tuple[int, str, str], int] = dataclasses.field(default_factory=dict)

    def apis(self, server: Server, model: str) -> list[tuple[str, Callable[[int], Measured]]]:
        """Each API this server offers for the model, as a function of concurrency."""
        base = f"http://127.0.0.1:{server.http}"
        target = f"127.0.0.1:{server.grpc}"
        apis: list[tuple[str, Callable[[int], Measured]]] = []

        def wrk(url: str, kind: str) -> Callable[[int], Measured]:
            return lambda c: run_wrk(url, self.payloads[(model, kind)], c, self.duration, self.work)

        def ghz(call: str, kind: str) -> Callable[[int], Measured]:
            assert self.ghz is not None
            binary, data = self.ghz, self.payloads[(model, kind)]
            return lambda c: run_ghz(
                binary, self.protoset, call, target, data, concurrency=c, duration=self.duration
            )

        def h2load(method: str, kind: str) -> Callable[[int], Measured]:
            payload = self.payloads[(model, kind)]
            framed = grpc_frame(self.work, payload)

            def run(c: int) -> Measured:
                key = (server.grpc, method, str(payload))  # each model answers its own size
                if key not in self.response_sizes:
                    self.response_sizes[key] = grpc_response_size(server.grpc, method, payload)
                return run_h2load(
                    server.grpc,
                    method,
                    framed,
                    self.response_sizes[key],
                    concurrency=c,
                    duration=self.duration,
                    work=self.work,
                )

            return run

        tfs, v2 = (
            "tensorflow.serving.PredictionService/Predict",
            "inference.GRPCInferenceService/ModelInfer",
        )
        ours = server.name.startswith("modelship")
        if ours or server.name == "kserve":
            apis.append(("REST v1", wrk(f"{base}/v1/models/{model}:predict", "v1")))
        if server.name in ("modelship-1proc", "modelship-default"):
            return apis  # what one process gives, and the tails as started by a user
        if server.name != "kserve":
            apis.append(("REST v2", wrk(f"{base}/v2/models/{model}/infer", "v2")))
        if ours:
            apis.append(("gRPC TFS", h2load(tfs, "tfs")))
        if server.name != "kserve":
            apis.append(("gRPC v2", h2load(v2, "v2grpc")))
        if self.ghz and ours:
            apis.append(("gRPC TFS (ghz)", ghz(tfs, "tfs")))
            apis.append(("gRPC v2 (ghz)", ghz(v2, "v2grpc")))
        return apis

    def interleaved(self, servers: list[Server], models: list[str], rounds: int) -> list[Result]:
        """Every server up at once, measured in turn for each cell, `rounds` times over.

        Load from other work on a shared machine drifts over minutes; taking turns within each
        cell and keeping the median lets every server see the same conditions.
        """
        cells: dict[tuple[str, str, str, int], list[Cell]] = {}
        warmed: set[tuple[str, str, str]] = set()
        for round_ in range(rounds):
            for model in models:
                for conc in self.concurrency:
                    for server in servers:
                        for api, run in self.apis(server, model):
                            if (server.name, api, model) not in warmed:
                                full, self.duration = self.duration, 2
                                run(1)  # warm-up: trace functions, open connections
                                self.duration = full
                                warmed.add((server.name, api, model))
                            before = server.cpu_seconds()
                            rps, p50, p99, errors = run(conc)
                            spent = server.cpu_seconds() - before
                            cpu_us = spent / max(1.0, rps * self.duration) * 1e6
                            cell = (rps, p50, p99, errors, cpu_us)
                            log(f"round {round_} {server.name} {api} {model} c={conc}: {cell}")
                            cells.setdefault((server.name, api, model, conc), []).append(cell)
        results = []
        for (name, api, model, conc), runs in cells.items():
            rps, p50, p99, _, cpu_us = (statistics.median(m[i] for m in runs) for i in range(5))
            errors = sum(m[3] for m in runs)
            results.append(Result(name, api, model, conc, rps, p50, p99, errors, runs, cpu_us))
        return results


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--models", nargs="+", default=["mlp", "half_plus_two"])
    parser.add_argument(
        "--servers",
        nargs="+",
        default=[
            "modelship",
            "modelship-1proc",
            "modelship-default",
            "kserve",
            "mlserver",
            "mlserver-batching",
        ],
    )
    parser.add_argument(
        "--ghz", action="store_true", help="also measure modelship's gRPC with ghz (Go client)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measurements per cell, interleaved; the median counts",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="one more flag for every modelship-server, as --server-arg=--gpu_memory_growth",
    )
    parser.add_argument(
        "--modelship-batching",
        choices=["bench", "server"],
        default="bench",
        help="bench: the bench's batching file (64 rows, 2 ms, as MLServer's); server: "
        "--enable_batching alone, so the server's own defaults apply (GPU defaults on a GPU)",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="servers share a GPU: this process and the peers grow GPU memory as needed, and "
        "the peers get tensorflow[and-cuda]",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (hack/bootstrap.sh does)")
    if args.gpu:
        grow_gpu_memory()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ms-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    all_models = build_models(work)
    models = {m: all_models[m] for m in args.models}
    payloads = write_payloads(work, list(models))
    protoset = write_protoset(work)
    ghz_bin = ghz() if args.ghz else None
    if shutil.which("h2load") is None:
        raise SystemExit(
            "h2load not found: apt-get install nghttp2-client (hack/bootstrap.sh does)"
        )
    results: list[Result] = in_process_limit(models, duration=min(args.duration, 4))

    ours = functools.partial(
        start_modelship,
        work,
        models,
        extra_args=tuple(args.server_arg),
        batching_file=args.modelship_batching == "bench",
    )
    starters: dict[str, Callable[[], Server]] = {
        "modelship": ours,
        "modelship-default": lambda: start_modelship_default(work, models),
        "kserve": lambda: start_kserve(work, models, args.gpu),
        "mlserver": lambda: start_mlserver(work, models, batching=False, gpu=args.gpu),
        "mlserver-batching": lambda: start_mlserver(work, models, batching=True, gpu=args.gpu),
    }
    for name in args.servers:
        procs = re.fullmatch(r"modelship-(\d+)proc", name)
        if procs:
            starters[name] = functools.partial(ours, workers=int(procs.group(1)))
        elif name not in starters:
            raise SystemExit(f"unknown server {name!r}: {', '.join(starters)}, modelship-<N>proc")
    bench = Bench(work, payloads, protoset, ghz_bin, args.duration, args.concurrency)
    servers: list[Server] = []
    try:
        for name in args.servers:
            log(f"starting {name}")
            servers.append(starters[name]())
        results.extend(bench.interleaved(servers, list(models), args.rounds))
    finally:
        for server in servers:
            server.stop()

    print(report(results, args))
    print()
    print(targets(results))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    return 0


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        "| model | c | server | API | req/s | p50 ms | p99 ms | errors | server CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        results, key=lambda r: (r.model, r.concurrency, r.server != "modelship", -r.rps)
    ):
        lines.append(
            f"| {r.model} | {r.concurrency} | {r.server} | {r.api} | {r.rps:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {r.cpu_us:,.0f} |"
        )
    lines.append("")
    lines.append(
        "| model | c | modelship best REST req/s | best peer (REST) | ratio | p99 ours / peer ms |"
    )
    lines.append("|---|---|---|---|---|---|")
    for model in args.models:
        for conc in args.concurrency:
            ours = [
                r
                for r in results
                if r.server == "modelship"
                and r.model == model
                and r.concurrency == conc
                and r.api.startswith("REST")
            ]
            peers = [
                r
                for r in results
                if not r.server.startswith("modelship")
                and r.server != "in-process"
                and r.model == model
                and r.concurrency == conc
                and r.api.startswith("REST")
            ]
            if not ours or not peers:
                continue
            best_ours = max(ours, key=lambda r: r.rps)
            best_peer = max(peers, key=lambda r: r.rps)
            lines.append(
                f"| {model} | {conc} | {best_ours.rps:,.0f} ({best_ours.api}) | "
                f"{best_peer.rps:,.0f} ({best_peer.server} {best_peer.api}) | "
                f"{best_ours.rps / best_peer.rps:.1f}x | "
                f"{best_ours.p99_ms:.2f} / {best_peer.p99_ms:.2f} |"
            )
    return "\n".join(lines)


def targets(results: list[Result]) -> str:
    """Issue 13's figures as ratios from this run; per round where the target says so."""

    def find(server: str, api: str, model: str, conc: int) -> Result | None:
        for r in results:
            if (r.server, r.api, r.model, r.concurrency) == (server, api, model, conc):
                return r
        return None

    lines = ["| figure | model | value | target |", "|---|---|---|---|"]
    for model in ("mlp", "half_plus_two"):
        rest = find("modelship", "REST v1", model, 64)
        if rest is None:
            continue
        for api in ("gRPC TFS", "gRPC v2"):
            grpc = find("modelship", api, model, 64)
            if grpc:
                lines.append(
                    f"| {api} ÷ REST v1 req/s, c=64 (p99 ÷ REST's; CPU/req ÷ REST's) | {model} | "
                    f"{grpc.rps / rest.rps:.2f} ({grpc.p99_ms / rest.p99_ms:.2f}; "
                    f"{grpc.cpu_us / max(rest.cpu_us, 1e-9):.2f}) | ≥ 0.8 (≤ 1.5) |"
                )
        v2 = find("modelship", "REST v2", model, 64)
        if v2:
            lines.append(
                f"| REST v2 ÷ REST v1 req/s, c=64 (REST v1 CPU/req ÷ v2's) | {model} | "
                f"{v2.rps / rest.rps:.2f} ({rest.cpu_us / max(v2.cpu_us, 1e-9):.2f}) | ≥ 0.95 |"
            )
        batch = find("in-process", "batch 64", model, 1)
        if batch and model == "mlp":
            lines.append(
                f"| REST v1 c=64 ÷ in-process batch-64 rows/s | {model} | "
                f"{rest.rps / batch.rps:.2f} | ≥ 0.40 |"
            )
        ours = [
            r
            for r in results
            if r.server == "modelship"
            and r.model == model
            and r.concurrency == 1
            and r.api.startswith("REST")
        ]
        peers = [
            r
            for r in results
            if r.server in ("kserve", "mlserver", "mlserver-batching")
            and r.model == model
            and r.concurrency == 1
            and r.api.startswith("REST")
        ]
        if ours and peers and model == "mlp":
            rounds = len(ours[0].rounds)
            per_round = [
                max(r.rounds[i][0] for r in ours) / max(r.rounds[i][0] for r in peers)
                for i in range(rounds)
            ]
            lines.append(
                f"| best REST c=1 ÷ best peer REST c=1, per round | {model} | "
                f"{' / '.join(f'{x:.1f}' for x in per_round)} | ≥ 2.5 every round |"
            )
        default = find("modelship-default", "REST v1", model, 64)
        if default:
            tails = [m[2] / m[1] for m in default.rounds if m[1]]
            lines.append(
                f"| p99 ÷ p50 at c=64, --enable_batching only, per round | {model} | "
                f"{' / '.join(f'{x:.1f}' for x in tails)} | ≤ 4 every round |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
