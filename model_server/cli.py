"""`modelship-server`: tensorflow_model_server's command line.

Flags take TF Serving's `--flag=value` form (`--flag value` works too). Flags TF Serving has but
this server does not implement are refused by name, rather than silently ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.metadata
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from . import tls, workers
from .config_files import (
    ConfigError,
    load_batching,
    load_model_config,
    load_monitoring,
)
from .core import limits
from .core.config import BatchingConfig, ModelConfig
from .runtime import devices

# tensorflow_model_server flags this server refuses, with the reason.
UNSUPPORTED = {
    "grpc_socket_path": "unix-socket gRPC is not supported",
    "platform_config_file": "only the TensorFlow platform is served",
    "use_tflite_model": "TensorFlow Lite models are not supported",
    "enable_signature_method_name_check": "not supported",
    "xla_cpu_compilation_enabled": "not supported",
    "saved_model_tags": "only the 'serve' tag is loaded",
    "grpc_channel_arguments": "not supported",
    "prefer_tflite_model": "TensorFlow Lite models are not supported",
}

# tensorflow_model_server flags accepted for drop-in compatibility that change nothing here.
ACCEPTED_NO_OP = {
    "rest_api_num_threads": "each worker process runs REST on one event loop; see --workers",
    "enable_model_warmup": "warm-up always runs",
    "tensorflow_session_parallelism": "use --tensorflow_intra_op_parallelism",
    "allow_version_labels_for_unavailable_models": "labels may name any configured version",
    "flush_filesystem_caches": "no effect",
}


TERMINATION_LOG = Path("/dev/termination-log")

# --enable_batching without --batching_parameters_file when this process sees a GPU. A GPU runs
# a batch of many rows in little more time than one, so batches may grow (128: TF Serving's GPU
# example); padding to powers of two keeps the shapes the GPU meets few, so kernels tuned
# per shape (cuDNN's autotuning) are tuned a handful of times rather than once per batch size;
# a second batch thread gathers and copies the next batch while one runs. No timeout: a lone
# request never waits, and under load the rows queued while the GPU is busy form the batch.
GPU_BATCHING = BatchingConfig(
    max_batch_size=128,
    batch_timeout_micros=0,
    max_enqueued_batches=100,
    num_batch_threads=2,
    allowed_batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128),
)


class _Parser(argparse.ArgumentParser):
    """Also leaves a bad command line's reason where Kubernetes shows it (the termination
    message), so the operator can report why the server would not start."""

    def error(self, message: str) -> NoReturn:
        if TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
            with contextlib.suppress(OSError):
                TERMINATION_LOG.write_text(f"{self.prog}: {message}\n")
        super().error(message)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _workers(text: str) -> int:
    """A count, or `auto` (the same as 0)."""
    if text == "auto":
        return 0
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or auto, got {text!r}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    grpc_port: int
    rest_port: int
    host: str
    models: list[ModelConfig]
    model_config_file: str | None
    model_config_poll_seconds: float
    file_system_poll_seconds: float
    batching: BatchingConfig | None
    metrics_path: str | None
    rest_timeout_seconds: float | None
    max_body_bytes: int
    max_b64_bytes: int
    shutdown_grace_seconds: float
    intra_op_threads: int
    inter_op_threads: int
    workers: int = 1
    tls: tls.TlsSource | None = None
    tls_poll_seconds: float = 5.0
    health_port: int = 0
    tensor_limits: limits.TensorLimits = dataclasses.field(default_factory=limits.TensorLimits)
    # CUDA_VISIBLE_DEVICES entries of the GPUs this process sees (workers.visible_gpus).
    gpus: tuple[str, ...] = ()
    gpu_memory: devices.GpuMemory = dataclasses.field(default_factory=devices.GpuMemory)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="modelship-server",
        description="TensorFlow model server: TF Serving REST + gRPC, Open Inference Protocol v2.",
        allow_abbrev=False,
    )
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0 disables gRPC)")
    p.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0 disables REST)")
    p.add_argument("--host", default="0.0.0.0", help="address both servers listen on")
    p.add_argument("--model_name", default=None, help="name of the one model served")
    p.add_argument("--model_base_path", default=None, help="folder of its numeric versions")
    p.add_argument("--model_config_file", default=None, help="text-proto ModelServerConfig")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0.0)
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    p.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--batching_parameters_file", default=None)
    p.add_argument("--monitoring_config_file", default=None)
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=30000, help="0 = no limit")
    p.add_argument("--rest_api_max_body_bytes", type=int, default=64 << 20, help="larger: 413")
    p.add_argument("--max_b64_bytes", type=int, default=16 << 20, help="largest binary value")
    p.add_argument("--shutdown_grace_seconds", type=float, default=30.0)
    p.add_argument(
        "--max_tensor_elements",
        type=int,
        default=limits.DEFAULT_MAX_ELEMENTS,
        help="most elements one input tensor may declare; larger requests are refused (400)",
    )
    p.add_argument(
        "--max_tensor_bytes",
        type=int,
        default=limits.DEFAULT_MAX_BYTES,
        help="most bytes one decoded input tensor may take; larger requests are refused (400)",
    )
    p.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        help="threads per TensorFlow op; 0: TensorFlow's default (all CPUs), or with "
        "--workers > 1 the CPUs divided among the workers",
    )
    p.add_argument(
        "--tensorflow_inter_op_parallelism",
        type=int,
        default=-1,
        help="negative: run a graph's ops on the calling batch thread (lowest latency; the "
        "batch threads are the parallelism); 0: TensorFlow's own pool",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="server processes sharing the ports, each with its own copy of the models "
        "(0 or auto: one per GPU, each pinned to its GPU, or without GPUs one per CPU this "
        "process may use)",
    )
    p.add_argument(
        "--per_process_gpu_memory_fraction",
        type=float,
        default=0.0,
        help="fraction of each GPU's memory this process's TensorFlow may take, 0 to 1 "
        "(0: TensorFlow decides, nearly all of it)",
    )
    p.add_argument(
        "--gpu_memory_growth",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="take GPU memory as models need it (up to the fraction, if set), not all at once",
    )
    p.add_argument(
        "--ssl_config_file",
        default=None,
        help="TF Serving SSLConfig text proto (server_key, server_cert, custom_ca: PEM texts; "
        "client_verify): TLS on gRPC and REST",
    )
    p.add_argument(
        "--ssl_cert_dir",
        default=None,
        help="folder with tls.crt, tls.key and optional ca.crt (a cert-manager Secret): "
        "TLS on gRPC and REST",
    )
    p.add_argument(
        "--ssl_client_verify",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="with --ssl_cert_dir: require client certificates signed by its ca.crt (mTLS)",
    )
    p.add_argument(
        "--ssl_poll_wait_seconds",
        type=float,
        default=5.0,
        help="how often the TLS files are checked for a new certificate (0: never)",
    )
    p.add_argument(
        "--health_port",
        type=int,
        default=0,
        help="plain-HTTP port answering only health, model status and metrics requests, for "
        "probes and scrapers that cannot present a client certificate (0: none)",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    for flag in ACCEPTED_NO_OP:
        p.add_argument(f"--{flag}", default=None, help=argparse.SUPPRESS)
    for flag in UNSUPPORTED:
        p.add_argument(f"--{flag}", default=None, help=argparse.SUPPRESS)
    return p


def parse(argv: list[str]) -> Settings:
    """Flags to Settings; exits with status 2 and a one-line reason on a bad command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"modelship-server {importlib.metadata.version('modelship')}")
        raise SystemExit(0)
    for flag, reason in UNSUPPORTED.items():
        if getattr(args, flag) is not None:
            parser.error(f"--{flag} is not supported by modelship-server: {reason}")
    for flag, reason in ACCEPTED_NO_OP.items():
        if getattr(args, flag) is not None:
            logging.getLogger(__name__).info("--%s accepted and ignored: %s", flag, reason)
    try:
        return _settings(parser, args)
    except ConfigError as exc:
        parser.error(str(exc))


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    if args.model_config_file:
        if args.model_base_path:
            parser.error("--model_config_file and --model_base_path cannot both be set")
        models = load_model_config(args.model_config_file)
    elif args.model_base_path:
        models = [ModelConfig(name=args.model_name or "default", base_path=args.model_base_path)]
    else:
        parser.error("set --model_base_path (with --model_name) or --model_config_file")
    if args.batching_parameters_file and not args.enable_batching:
        parser.error("--batching_parameters_file needs --enable_batching")
    if args.port == 0 and args.rest_api_port == 0:
        parser.error("both --port and --rest_api_port are 0: nothing would listen")
    for flag in ("port", "rest_api_port", "health_port"):
        if not 0 <= getattr(args, flag) <= 65535:
            parser.error(f"--{flag} must be between 0 and 65535")
    for flag in ("rest_api_max_body_bytes", "max_tensor_elements", "max_tensor_bytes"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be positive")
    if args.workers < 0:
        parser.error("--workers must be 0 (one per GPU, or per CPU) or more")
    source = _tls_source(parser, args)
    gpus = workers.visible_gpus()
    worker_count = args.workers or len(gpus) or workers.cpu_count()
    intra_op = args.tensorflow_intra_op_parallelism
    if intra_op == 0 and worker_count > 1:
        # Workers each running ops on every CPU would oversubscribe them, and a thread pool
        # costs more than it gains on small batches (batch 1 of an MLP: 2.8x slower on 2 CPUs).
        intra_op = max(1, workers.cpu_count() // worker_count)
    return Settings(
        grpc_port=args.port,
        rest_port=args.rest_api_port,
        host=args.host,
        models=models,
        model_config_file=args.model_config_file,
        model_config_poll_seconds=args.model_config_file_poll_wait_seconds,
        file_system_poll_seconds=args.file_system_poll_wait_seconds,
        batching=_batching(args, gpus),
        metrics_path=load_monitoring(args.monitoring_config_file),
        rest_timeout_seconds=(args.rest_api_timeout_in_ms / 1000) or None,
        max_body_bytes=args.rest_api_max_body_bytes,
        max_b64_bytes=args.max_b64_bytes,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        intra_op_threads=intra_op,
        inter_op_threads=args.tensorflow_inter_op_parallelism,
        workers=worker_count,
        tls=source,
        tls_poll_seconds=args.ssl_poll_wait_seconds,
        health_port=args.health_port,
        tensor_limits=limits.TensorLimits(args.max_tensor_elements, args.max_tensor_bytes),
        gpus=gpus,
        gpu_memory=_gpu_memory(parser, args),
    )


def _gpu_memory(parser: argparse.ArgumentParser, args: argparse.Namespace) -> devices.GpuMemory:
    fraction = args.per_process_gpu_memory_fraction
    if not 0.0 <= fraction <= 1.0:
        # Above 1 TensorFlow would spill into host memory (unified memory): not offered.
        parser.error("--per_process_gpu_memory_fraction must be between 0 and 1")
    return devices.GpuMemory(growth=args.gpu_memory_growth, fraction=fraction)


def _batching(args: argparse.Namespace, gpus: tuple[str, ...]) -> BatchingConfig | None:
    """A batching file wins as a whole (unset fields take the usual defaults, as in TF Serving);
    without one, a process that sees a GPU batches with GPU_BATCHING."""
    if not args.enable_batching:
        return None
    if args.batching_parameters_file:
        return load_batching(args.batching_parameters_file)
    return GPU_BATCHING if gpus else BatchingConfig()


def _tls_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tls.TlsSource | None:
    if args.ssl_config_file and args.ssl_cert_dir:
        parser.error("--ssl_config_file and --ssl_cert_dir cannot both be set")
    if args.ssl_client_verify and not args.ssl_cert_dir:
        parser.error(
            "--ssl_client_verify needs --ssl_cert_dir (with --ssl_config_file, set client_verify "
            "in the file)"
        )
    source: tls.TlsSource | None = None
    if args.ssl_config_file:
        source = tls.SslConfigFile(args.ssl_config_file)
    elif args.ssl_cert_dir:
        source = tls.CertDir(args.ssl_cert_dir, args.ssl_client_verify)
    if source is None:
        if args.health_port:
            parser.error("--health_port is for TLS servers (--ssl_config_file, --ssl_cert_dir)")
        return None
    try:
        tls.check(source)
    except tls.TlsError as exc:
        parser.error(f"TLS: {exc}")
    return source


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("MODELSHIP_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = sys.argv[1:] if argv is None else argv
    settings = parse(args)
    limits.configure(settings.tensor_limits)
    if settings.workers > 1:
        ports = [
            (settings.host, settings.rest_port),
            (settings.host, settings.grpc_port),
            (settings.host, settings.health_port),
        ]
        return workers.supervise(args, settings.workers, ports, settings.gpus)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if settings.gpus:
        # Before any model loads: TensorFlow keeps the GPU options of whatever opens a GPU first.
        devices.configure(settings.gpu_memory)
    elif not settings.gpu_memory.is_default:
        logging.getLogger(__name__).warning(
            "no GPU visible (no /dev/nvidia<N>, CUDA_VISIBLE_DEVICES unset or empty): "
            "--gpu_memory_growth and --per_process_gpu_memory_fraction change nothing"
        )
    # Imported late: TensorFlow takes seconds to import, and a bad flag should fail at once.
    app = importlib.import_module("modelship_server.app")
    return int(app.run(settings))
