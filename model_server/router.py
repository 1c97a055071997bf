"""Sends each REST request to the protocol adapter owning its path prefix; serves the metrics."""

from __future__ import annotations

import re
from collections.abc import Callable

from .core.inference import InferenceService
from .http.server import Request, Response, json_error
from .protocols.tfserving_rest import TfServingRest
from .protocols.v2_rest import V2Rest

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# What --health_port answers: liveness, readiness and model status, never inference or metadata.
HEALTH_PATHS = re.compile(
    r"/v2/health/(live|ready)"
    r"|/v2/models/[^/:]+(/versions/[^/:]+)?/ready"
    r"|/v1/models/[^/:]+(/versions/[^/:]+|/labels/[^/:]+)?"
)


class Router:
    def __init__(
        self,
        service: InferenceService,
        metrics_path: str | None,
        max_b64_bytes: int | None = None,
        render_metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.metrics_paths = {"/metrics"} | ({metrics_path} if metrics_path else set())
        self.tfserving = TfServingRest(service, max_b64_bytes)
        self.v2 = V2Rest(service)
        # With --workers, whichever worker a scrape reaches answers for all (metrics_share.py).
        self.render_metrics = render_metrics or service.metrics.registry.render

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/v1/"):
            return await self.tfserving.handle(request)
        if path == "/v2" or path.startswith("/v2/"):
            return await self.v2.handle(request)
        if path in self.metrics_paths and request.method == "GET":
            return Response(200, self.render_metrics(), METRICS_CONTENT_TYPE)
        return json_error(404, f"no such endpoint: {request.method} {path}")

    async def health(self, request: Request) -> Response:
        """The plain-HTTP health port: probes, the operator's version check, and scrapes."""
        if request.method == "GET" and (
            request.path in self.metrics_paths or HEALTH_PATHS.fullmatch(request.path)
        ):
            return await self(request)
        return json_error(404, f"not served on the health port: {request.method} {request.path}")
