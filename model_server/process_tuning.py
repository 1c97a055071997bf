"""Interpreter settings for a serving process, applied once before the event loop starts."""

from __future__ import annotations

import gc
import os
import sys


def tune_for_serving() -> None:
    # Hand the GIL over sooner than the default 5 ms: batch threads waking to run a model, and
    # the event loop waking to answer, otherwise wait out a whole interval under load.
    sys.setswitchinterval(float(os.environ.get("MODELSHIP_SWITCH_INTERVAL", "0.001")))
    # The imports (TensorFlow's mostly) leave ~275k objects that live as long as the process.
    # Every full collection would walk them all, stalling requests ~150 ms every few seconds
    # under load; frozen, collections see only what the server makes afterwards.
    gc.freeze()
