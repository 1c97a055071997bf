"""The `modelship` program: `fetch` (the storage initializer, storage/cli.py) and `train` (the
training entrypoint, training/). Only `train` imports TensorFlow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .storage import cli as storage_cli
from .training.args import add_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = storage_cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = commands.add_parser(
        "train",
        help="train a Keras model (in a TrainingJob's pods)",
        description="Run a user function's Keras model under the tf.distribute strategy TF_CONFIG "
        "calls for, with checkpoints and a progress endpoint, and export it as a SavedModel "
        "version. Exit codes: 0 done, 1 failed, 2 bad arguments or model, 138 lost a peer.",
    )
    add_arguments(train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    if args.command == "train":
        from .training.run import main as train  # noqa: PLC0415 - fetch stays free of TF

        return train(args)
    return storage_cli.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
