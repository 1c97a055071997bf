"""Throughput and latency of modelship-server against Python peers, side by side in one run.

    .venv/bin/python bench/server_throughput/run.py [--duration 8] [--concurrency 1 16 64]

Servers, each serving the same two SavedModels (an MLP 784-1024-1024-10 built here, and TF
Serving's half_plus_two): modelship-server with one process per CPU (`--workers=0`; REST TF
Serving API and v2, gRPC TF Serving API and v2) and as one process (REST v1 only, for
comparison), KServe's Python ModelServer with a custom Model, MLServer with a custom runtime
(with and without adaptive batching), and the in-process limit (the signature called directly,
batch 1 and 64).
All servers run at once and take turns for each measurement, `--rounds` times; medians count.
Load comes from compiled tools: wrk for REST, ghz for gRPC. The peers live in their own venvs,
created here under the cache folder (not the project's lock), as are ghz and the work files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- tools and peers --------------------------------------------------------------------------


def peer_python(name: str) -> Path:
    venv = CACHE / f"bench-venv-{name}"
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating the {name} venv at {venv}")
        subprocess.run([str(UV), "venv", "-q", "-p", "3.11", str(venv)], check=True)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run([str(UV), "pip", "install", "-q", *PEERS[name], TF], check=True, env=env)
    return python


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


def start_modelship(work: Path, models: dict[str, Path], workers: int = 0) -> Server:
    """workers 0: one server process per CPU ("modelship"); 1: a single process."""
    config = work / "modelship.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(f'  config {{ name: "{n}" base_path: "{p}" }}\n' for n, p in models.items())
        + "}\n"
    )
    batching = work / "batching.config"
    batching.write_text(
        # The same 64 rows / 2 ms as MLServer's adaptive batching below.
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "max_enqueued_batches { value: 1000 }\nnum_batch_threads { value: 1 }\n"
    )
    http, grpc = free_port(), free_port()
    cmd = [
        str(Path(sys.executable).parent / "modelship-server"),
        f"--rest_api_port={http}",
        f"--port={grpc}",
        "--host=127.0.0.1",
        f"--model_config_file={config}",
        "--enable_batching",
        f"--batching_parameters_file={batching}",
        f"--workers={workers}",
    ]
    name = "modelship" if workers == 0 else f"modelship-{workers}proc"
    return _spawn(name, cmd, work, http=http, grpc=grpc, ready="/v2/health/ready")


def start_kserve(work: Path, models: dict[str, Path]) -> Server:
    http, grpc = free_port(), free_port()
    cmd = [
        str(peer_python("kserve")),
        str(HERE / "kserve_peer.py"),
        f"--http_port={http}",
        f"--grpc_port={grpc}",
    ]
    for name, path in models.items():
        cmd.append(f"--model={name}={_version_dir(path)}")
    ready = f"/v1/models/{next(iter(models))}"
    return _spawn("kserve", cmd, work, http=http, grpc=grpc, ready=ready)


def start_mlserver(work: Path, models: dict[str, Path], batching: bool) -> Server:
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
    mlserver = peer_python("mlserver").parent / "mlserver"
    return _spawn(
        name,
        [str(mlserver), "start", str(folder)],
        work,
        http=http,
        grpc=grpc,
        ready="/v2/health/ready",
        cwd=str(folder),
        env={"PYTHONPATH": str(folder)},
    )


def _version_dir(path: Path) -> Path:
    return sorted(p for p in path.iterdir() if p.name.isdigit())[-1]


# -- load generators --------------------------------------------------------------------------


Measured = tuple[float, float, float, int]  # req/s, p50 ms, p99 ms, errors


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

        if server.name in ("modelship", "modelship-1proc", "kserve"):
            apis.append(("REST v1", wrk(f"{base}/v1/models/{model}:predict", "v1")))
        if server.name == "modelship-1proc":
            return apis  # what one process gives, for comparison: REST v1 is enough
        if server.name != "kserve":
            apis.append(("REST v2", wrk(f"{base}/v2/models/{model}/infer", "v2")))
        if self.ghz and server.name == "modelship":
            apis.append(("gRPC TFS", ghz("tensorflow.serving.PredictionService/Predict", "tfs")))
        if self.ghz and server.name != "kserve":
            apis.append(("gRPC v2", ghz("inference.GRPCInferenceService/ModelInfer", "v2grpc")))
        return apis

    def interleaved(self, servers: list[Server], models: list[str], rounds: int) -> list[Result]:
        """Every server up at once, measured in turn for each cell, `rounds` times over.

        Load from other work on a shared machine drifts over minutes; taking turns within each
        cell and keeping the median lets every server see the same conditions.
        """
        cells: dict[tuple[str, str, str, int], list[Measured]] = {}
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
                            measured = run(conc)
                            log(f"round {round_} {server.name} {api} {model} c={conc}: {measured}")
                            cells.setdefault((server.name, api, model, conc), []).append(measured)
        results = []
        for (name, api, model, conc), runs in cells.items():
            rps, p50, p99, _ = (statistics.median(m[i] for m in runs) for i in range(4))
            errors = sum(m[3] for m in runs)
            results.append(Result(name, api, model, conc, rps, p50, p99, errors))
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
        default=["modelship", "modelship-1proc", "kserve", "mlserver", "mlserver-batching"],
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measurements per cell, interleaved; the median counts",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (hack/bootstrap.sh does)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ms-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    all_models = build_models(work)
    models = {m: all_models[m] for m in args.models}
    payloads = write_payloads(work, list(models))
    protoset = write_protoset(work)
    ghz_bin = ghz()
    results: list[Result] = in_process_limit(models, duration=min(args.duration, 4))

    starters = {
        "modelship": lambda: start_modelship(work, models),
        "modelship-1proc": lambda: start_modelship(work, models, workers=1),
        "kserve": lambda: start_kserve(work, models),
        "mlserver": lambda: start_mlserver(work, models, batching=False),
        "mlserver-batching": lambda: start_mlserver(work, models, batching=True),
    }
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
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    return 0


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        "| model | c | server | API | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        results, key=lambda r: (r.model, r.concurrency, r.server != "modelship", -r.rps)
    ):
        lines.append(
            f"| {r.model} | {r.concurrency} | {r.server} | {r.api} | {r.rps:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} |"
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


if __name__ == "__main__":
    sys.exit(main())
