"""Exit codes of `modelship train` (the Job's podFailurePolicy and restartPolicy ExitCode rely on
them: 1..127 are not retried, 128+ are)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

OTHER = 1
BAD_INPUT = 2  # bad arguments, TF_CONFIG or --model
LOST_PEER = 138  # a peer went away mid-training: restarting the tasks resumes from checkpoints


def lost_peer_errors() -> tuple[type[BaseException], ...]:
    """What collectives raise when a peer dies or stops answering."""
    errors: tuple[Any, ...] = (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.DeadlineExceededError,
    )
    return errors
