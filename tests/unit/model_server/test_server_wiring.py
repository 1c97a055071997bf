"""The parts app.py wires: REST routing, bounded thread joins, the manager's unload listeners."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import orjson
from fake_servable import FakeServable
from modelship_server.core.config import ModelConfig
from modelship_server.core.inference import InferenceService
from modelship_server.core.manager import ModelManager
from modelship_server.core.metrics import ServerMetrics
from modelship_server.drain import _within
from modelship_server.http.server import Request, Response
from modelship_server.router import Router


def _service(base: Path, versions: list[str]) -> tuple[InferenceService, ModelManager]:
    for version in versions:
        (base / version).mkdir(parents=True)
    manager = ModelManager(lambda path: FakeServable(), poll_seconds=0)
    manager.apply_config([ModelConfig("m", str(base))])
    return InferenceService(manager, ServerMetrics()), manager


def _get(router: Router, path: str) -> Response:
    return asyncio.run(router(Request("GET", path, "", {}, b"")))


def test_the_router_serves_metrics_on_both_paths_and_404_elsewhere(tmp_path: Path) -> None:
    service, _ = _service(tmp_path / "m", ["1"])
    router = Router(service, "/custom/metrics", render_metrics=lambda: b"# all workers\n")
    for path in ("/metrics", "/custom/metrics"):
        response = _get(router, path)
        assert (response.status, response.body) == (200, b"# all workers\n")
        assert response.content_type.startswith("text/plain")
    missing = _get(router, "/nowhere")
    assert missing.status == 404
    assert "/nowhere" in orjson.loads(missing.body)["error"]


def test_the_router_hands_v1_and_v2_paths_to_their_adapters(tmp_path: Path) -> None:
    service, _ = _service(tmp_path / "m", ["1"])
    router = Router(service, None)
    status = orjson.loads(_get(router, "/v1/models/m").body)
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert _get(router, "/v2/health/ready").status == 200
    service.models.start_draining()
    assert _get(router, "/v2/health/ready").status == 503


def test_within_tells_whether_the_blocking_call_returned_in_time() -> None:
    release = threading.Event()
    try:
        assert asyncio.run(_within(lambda: None, 30.0))
        assert not asyncio.run(_within(release.wait, 0.05))
    finally:
        release.set()


def test_unload_listeners_hear_of_each_unloaded_version(tmp_path: Path) -> None:
    base = tmp_path / "m"
    _, manager = _service(base, ["1"])
    old = manager.resolve("m").servable
    heard: list[object] = []
    manager.add_unload_listener(heard.append)

    (base / "2").mkdir()
    manager.sync()

    assert manager.resolve("m").version == 2
    assert heard == [old]
