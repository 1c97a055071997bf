"""`modelship train`'s arguments. Settings the operator passes as environment variables are the
defaults of their flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_METRICS_PORT = 9400


def positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 turns the server off)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FUNCTION",
        help="the function that returns a TrainingPlan (see modelship_server.training)",
    )
    parser.add_argument("--epochs", type=positive, default=1, help="default 1")
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=32,
        help="global batch size, all replicas; default 32",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=positive,
        default=None,
        help="batches per epoch (the data set repeats); default: one pass over the data set",
    )
    parser.add_argument(
        "--output",
        default=env.get("MODELSHIP_OUTPUT_URI") or None,
        metavar="URI",
        help="s3://, gs:// or file:// base path; the model goes to URI/<version>; "
        "default $MODELSHIP_OUTPUT_URI, else no export",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="BackupAndRestore state; default $MODELSHIP_CHECKPOINT_DIR, else "
        "TMPDIR/modelship-checkpoints",
    )
    parser.add_argument(
        "--metrics-host",
        default=env.get("MODELSHIP_POD_IP") or "0.0.0.0",
        help="address of the progress endpoint; default $MODELSHIP_POD_IP, else 0.0.0.0",
    )
    parser.add_argument(
        "--metrics-port",
        type=port,
        default=env.get("MODELSHIP_METRICS_PORT") or DEFAULT_METRICS_PORT,
        help=f"default $MODELSHIP_METRICS_PORT, else {DEFAULT_METRICS_PORT}; 0 = off",
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=None,
        metavar="FILE",
        help="receives the result as JSON (or the error line); default /dev/termination-log "
        "when it exists and is writable",
    )
