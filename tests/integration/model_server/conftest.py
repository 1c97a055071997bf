"""Real modelship-server processes for the integration tests, and the reference models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from server_process import MAX_BODY, METRICS_PATH, TESTDATA, ServerProcess

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not (TESTDATA / "saved_model_half_plus_two_cpu").is_dir():
        pytest.skip(f"TF Serving reference models not found at {TESTDATA} (../shared missing)")
    return TESTDATA


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    started: list[ServerProcess] = []

    def start(*args: str, ready: bool = True) -> ServerProcess:
        log = tmp_path_factory.mktemp("server") / "server.log"
        server = ServerProcess(list(args), log)
        started.append(server)
        return server.wait_ready() if ready else server

    yield start
    for server in started:
        server.terminate()


REFERENCE_CONFIG = """
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{data}/saved_model_half_plus_two_cpu" }}
  config {{
    name: "two_versions"
    base_path: "{data}/saved_model_half_plus_two_2_versions"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 123 }}
    version_labels {{ key: "canary" value: 124 }}
  }}
  config {{ name: "half_plus_three" base_path: "{data}/saved_model_half_plus_three" }}
}}
"""

BATCHING = """
max_batch_size { value: 64 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
"""


@pytest.fixture(scope="session")
def reference_server(
    testdata: Path, server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """One batching server with every reference model, shared by the protocol tests."""
    folder = tmp_path_factory.mktemp("reference")
    config = folder / "models.config"
    config.write_text(REFERENCE_CONFIG.format(data=testdata))
    batching = folder / "batching.config"
    batching.write_text(BATCHING)
    monitoring = folder / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    return server_factory(
        f"--model_config_file={config}",
        f"--monitoring_config_file={monitoring}",
        "--enable_batching",
        f"--batching_parameters_file={batching}",
        f"--rest_api_max_body_bytes={MAX_BODY}",
    )


@pytest.fixture
def rest(reference_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reference_server.url, timeout=30) as client:
        yield client
