"""Training throughput of `modelship train`: one process (the default strategy, Keras fit) against
two MultiWorkerMirroredStrategy worker processes on loopback (the distributed loop, gradients
all-reduced every step), on the digits example, side by side in one run.

Throughput counts examples of the global batch per second of training, from the end of the first
epoch (tracing and start-up left out) to the end of the last, checkpoint saves included. Each
configuration runs `--rounds` times, alternating, and the median is kept.

    .venv/bin/python bench/training_throughput.py
    .venv/bin/python bench/training_throughput.py --batch-sizes 64 512 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODELSHIP = Path(sys.executable).parent / "modelship"
EXAMPLE = "modelship_server.training.examples.digits:model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def epoch_times(proc: subprocess.Popen[str], times: list[float]) -> None:
    """The arrival time of each "epoch N/M ..." line the trainer prints."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("epoch "):
            times.append(time.monotonic())


def run(workers: int, batch: int, epochs: int, steps: int) -> float:
    """Examples per second of one training run with `workers` processes."""
    ports = [free_port() for _ in range(workers)]
    with tempfile.TemporaryDirectory(prefix="modelship-bench-") as tmp:
        procs: list[subprocess.Popen[str]] = []
        times: list[list[float]] = []
        for index in range(workers):
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": tmp,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "MODELSHIP_METRICS_PORT": "0",
            }
            if workers > 1:
                cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
                task = {"type": "worker", "index": index}
                env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
            command = [str(MODELSHIP), "train", f"--model={EXAMPLE}", f"--batch-size={batch}"]
            command += [f"--epochs={epochs}", f"--steps-per-epoch={steps}"]
            command += [f"--checkpoint-dir={tmp}/ck", f"--termination-log={tmp}/t{index}"]
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            procs.append(proc)
            times.append([])
            threading.Thread(target=epoch_times, args=(proc, times[-1]), daemon=True).start()
        for proc in procs:
            if proc.wait(timeout=900) != 0:
                raise SystemExit(f"a trainer failed with exit code {proc.returncode}")
        time.sleep(0.2)  # the reader threads see the last lines
    first = times[0]
    if len(first) != epochs:
        raise SystemExit(f"saw {len(first)} of {epochs} epoch lines")
    return (epochs - 1) * steps * batch / (first[-1] - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.epochs} epochs x {args.steps_per_epoch} steps")
    print("| global batch | 1 process (examples/s) | 2 MWMS workers (examples/s) | 2 / 1 |")
    print("|---|---|---|---|")
    for batch in args.batch_sizes:
        rates: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                rates[workers].append(run(workers, batch, args.epochs, args.steps_per_epoch))
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print(f"| {batch} | {one:,.0f} | {two:,.0f} | {two / one:.2f} |", flush=True)


if __name__ == "__main__":
    main()
