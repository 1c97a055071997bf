"""v2 REST, JSON tensors against the binary tensor extension, through tritonclient's HTTP client.

    .venv/bin/python bench/server_throughput/binary_tensors.py [--duration 8] [--concurrency 64]
        [--rounds 3] [--rows 1] [--workers 1]

One modelship-server (`--enable_batching`, the bench's batching file as in run.py) serves the
MLP (784 floats in, 10 out). tritonclient's HTTP client keeps `--concurrency` requests in flight
(that many threads, each with its own client and connection) for `--duration` seconds, once
with JSON `data` (`binary_data=False` on the input and the output) and once with the binary
extension (`binary_data=True`: raw little-endian bytes after the JSON header,
Inference-Header-Content-Length), alternating `--rounds` times. Each row gives requests/s, the
client's p50/p99 latency, and the server's CPU microseconds per request (its processes' CPU
time over the requests answered), which unlike requests/s does not depend on how much CPU the
client in the same machine takes. `--rows` sends that many MLP rows per request (bigger tensors).
Every 31st answer is checked against the first one (to float rounding: batches of different
sizes round differently).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import run as bench


def server_cpu(pid: int) -> float:
    """CPU seconds of the process and its children (the --workers processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(
    url: str, x: np.ndarray, binary: bool, concurrency: int, duration: float, pid: int
) -> dict[str, float]:
    """`concurrency` threads, each with its own client sending one request after another.

    (tritonclient's async_infer ran its requests one at a time here: ~80 req/s at any
    concurrency. A client per thread keeps `concurrency` requests in flight.)
    """
    import tritonclient.http as triton  # noqa: PLC0415

    def request() -> tuple[list[Any], list[Any]]:
        tensor = triton.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        return [tensor], [triton.InferRequestedOutput("y", binary_data=binary)]

    first = triton.InferenceServerClient(url)
    expected = first.infer("mlp", *request()[:1], outputs=request()[1]).as_numpy("y")
    first.close()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    wrong: list[int] = []
    go = threading.Event()
    stop = [0.0]

    def client(out: list[float]) -> None:
        conn = triton.InferenceServerClient(url)
        inputs, outputs = request()
        go.wait()
        while time.perf_counter() < stop[0]:
            sent = time.perf_counter()
            result = conn.infer("mlp", inputs, outputs=outputs)
            out.append(time.perf_counter() - sent)
            if len(out) % 31 == 0 and not np.allclose(
                result.as_numpy("y"), expected, rtol=1e-4, atol=1e-5
            ):
                wrong.append(1)
        conn.close()

    threads = [threading.Thread(target=client, args=(out,)) for out in latencies]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # clients connected
    cpu0, started = server_cpu(pid), time.perf_counter()
    stop[0] = started + duration
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = server_cpu(pid) - cpu0
    if wrong:
        raise SystemExit("a wrong answer")
    merged = sorted(v for out in latencies for v in out)
    done = len(merged)
    return {
        "rps": done / elapsed,
        "p50_ms": merged[done // 2] * 1e3,
        "p99_ms": merged[min(done - 1, done * 99 // 100)] * 1e3,
        "cpu_us": cpu / done * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or bench.CACHE / "binary-bench"
    work.mkdir(parents=True, exist_ok=True)
    models = bench.build_models(work)
    server = bench.start_modelship(work, {"mlp": models["mlp"]}, workers=args.workers)
    x = np.array([bench.row("mlp")] * args.rows, dtype=np.float32)
    results: dict[str, list[dict[str, float]]] = {"json": [], "binary": []}
    try:
        url = f"127.0.0.1:{server.http}"
        for _ in range(args.rounds):
            for kind, rows in results.items():
                row = measure(
                    url, x, kind == "binary", args.concurrency, args.duration, server.proc.pid
                )
                rows.append(row)
                print(
                    f"{kind:6s} c={args.concurrency} rows={args.rows}: {row['rps']:8.0f} req/s  "
                    f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
                    f"server {row['cpu_us']:5.0f} us CPU/request",
                    flush=True,
                )
    finally:
        server.stop()
    med = {
        k: {f: statistics.median(r[f] for r in rows) for f in rows[0]}
        for k, rows in results.items()
    }
    print(
        f"\nmedians over {args.rounds} rounds, MLP, c={args.concurrency}, rows={args.rows}:\n"
        f"| v2 REST via tritonclient | req/s | p50 ms | p99 ms | server us CPU/request |\n"
        f"|---|---|---|---|---|\n"
        + "".join(
            f"| {k} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
            f"| {m['cpu_us']:.0f} |\n"
            for k, m in med.items()
        )
        + f"binary / JSON req/s: {med['binary']['rps'] / med['json']['rps']:.2f}; "
        f"server CPU per request, binary / JSON: "
        f"{med['binary']['cpu_us'] / med['json']['cpu_us']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
