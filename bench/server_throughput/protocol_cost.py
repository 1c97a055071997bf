"""What each REST protocol costs the server per request, without HTTP or TensorFlow.

The same half_plus_two request, as TF Serving's REST (`/v1/...:predict`) and as the Open
Inference Protocol (`/v2/.../infer`), goes through the server's real Router, InferenceService
and adapters, in this process, to a servable that computes 0.5x + 2 in numpy. The difference is
what the v2 adapter adds per request (parsing the longer body, checking name, shape and
datatype, the longer answer): the part of the REST v2 ÷ v1 gap that is ours to cut.

    .venv/bin/python bench/server_throughput/protocol_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from modelship_server.core.config import ModelConfig
from modelship_server.core.inference import InferenceService
from modelship_server.core.manager import ModelManager
from modelship_server.core.metrics import ServerMetrics
from modelship_server.core.types import Signature, Tensors, TensorSpec
from modelship_server.http.server import Request
from modelship_server.router import Router

SIGNATURE = Signature(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorSpec("x", "DT_FLOAT", (-1, 1))},
    {"y": TensorSpec("y", "DT_FLOAT", (-1, 1))},
)
REQUESTS = {
    "REST v1": Request(
        "POST",
        "/v1/models/half_plus_two:predict",
        "",
        {"content-type": "application/json"},
        b'{"instances": [[1.0]]}',
    ),
    "REST v2": Request(
        "POST",
        "/v2/models/half_plus_two/infer",
        "",
        {"content-type": "application/json"},
        b'{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1.0]}]}',
    ),
}


class HalfPlusTwo:
    """half_plus_two's signature, computed in numpy: no TensorFlow time in the figure."""

    @property
    def signatures(self) -> Mapping[str, Signature]:
        return {"serving_default": SIGNATURE}

    def signature_def_map(self) -> bytes:
        return b""

    def run(self, signature: str, inputs: Tensors, output_keys: list[str] | None) -> Tensors:
        return {"y": inputs["x"] * 0.5 + 2}

    def close(self) -> None:
        pass


async def per_request_us(router: Router, request: Request, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await router(request)
    return (time.perf_counter() - started) / calls * 1e6


async def measure(rounds: int, calls: int) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="protocol-cost-")) / "half_plus_two"
    (base / "1").mkdir(parents=True)
    manager = ModelManager(lambda path: HalfPlusTwo(), poll_seconds=0)
    manager.apply_config([ModelConfig("half_plus_two", str(base))])
    router = Router(InferenceService(manager, ServerMetrics()), None)
    for name, request in REQUESTS.items():
        response = await router(request)
        if response.status != 200:
            raise SystemExit(f"{name}: {response.status} {response.body!r}")
    best = dict.fromkeys(REQUESTS, float("inf"))
    for _ in range(rounds):  # interleaved; the best round is the least disturbed
        for name, request in REQUESTS.items():
            best[name] = min(best[name], await per_request_us(router, request, calls))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=3000, help="requests per round")
    args = parser.parse_args()
    best = asyncio.run(measure(args.rounds, args.calls))
    print("| API | µs per request (best round) |\n|---|---|")
    for name, us in best.items():
        print(f"| {name} | {us:.1f} |")
    v1, v2 = best["REST v1"], best["REST v2"]
    print(f"\nv2 - v1: {v2 - v1:.1f} µs per request; v1 ÷ v2: {v1 / v2:.2f}")


if __name__ == "__main__":
    main()
