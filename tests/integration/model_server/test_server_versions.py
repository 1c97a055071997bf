"""Versions appear, retire and fail on disk while the server runs; the config file is re-read."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import ServerFactory

CONFIG = """
model_config_list {{
  config {{ name: "live" base_path: "{live}" }}
  config {{
    name: "pinned"
    base_path: "{two}"
    model_version_policy {{ specific {{ versions: 124 versions: 999 }} }}
  }}
  {extra}
}}
"""


def _states(client: httpx.Client, model: str) -> dict[str, tuple[str, str]]:
    reply = client.get(f"/v1/models/{model}")
    if reply.status_code != 200:
        return {}
    return {
        s["version"]: (s["state"], s["status"]["error_code"])
        for s in reply.json()["model_version_status"]
    }


def _version_served(client: httpx.Client, model: str) -> str:
    return str(client.get(f"/v1/models/{model}/metadata").json()["model_spec"]["version"])


def test_versions_follow_the_disk_and_config(
    server_factory: ServerFactory, testdata: Path, tmp_path: Path
) -> None:
    two = testdata / "saved_model_half_plus_two_2_versions"
    live = tmp_path / "live"
    live.mkdir()
    shutil.copytree(two / "00000123", live / "123")
    config = tmp_path / "models.config"
    config.write_text(CONFIG.format(live=live, two=two, extra=""))
    server = server_factory(
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=0.5",
        "--file_system_poll_wait_seconds=0.3",
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert _version_served(client, "live") == "123"

        # A specific policy naming a missing version reports it; the present one serves.
        pinned = _states(client, "pinned")
        assert pinned["124"] == ("AVAILABLE", "OK")
        assert pinned["999"] == ("END", "NOT_FOUND")
        assert _version_served(client, "pinned") == "124"

        # A new version loads without a restart; the old one is unloaded once it is AVAILABLE.
        shutil.copytree(two / "00000124", live / "124")
        server.wait_until(
            lambda c: _states(c, "live") == {"123": ("END", "OK"), "124": ("AVAILABLE", "OK")},
            timeout=60,
        )
        assert _version_served(client, "live") == "124"
        gone = client.post("/v1/models/live/versions/123:predict", json={"instances": [1.0]})
        assert gone.status_code == 404

        # A corrupt newer version shows its error; the model keeps serving the last good one.
        (live / "125").mkdir()
        (live / "125" / "saved_model.pb").write_bytes(b"this is not a protobuf")
        server.wait_until(lambda c: "125" in _states(c, "live"), timeout=60)
        server.wait_until(lambda c: _states(c, "live")["125"][0] == "END", timeout=60)
        _, code = _states(client, "live")["125"]
        assert code != "OK"
        assert client.get("/v1/models/live/versions/125").json()["model_version_status"][0][
            "status"
        ]["error_message"]
        reply = client.post("/v1/models/live:predict", json={"instances": [2.0]})
        assert reply.json() == {"predictions": [3.0]}
        assert _version_served(client, "live") == "124"

        # Editing the config file adds a model without a restart.
        extra = (
            f'config {{ name: "three" base_path: "{testdata / "saved_model_half_plus_three"}" }}'
        )
        config.write_text(CONFIG.format(live=live, two=two, extra=extra))
        server.wait_until(lambda c: _states(c, "three").get("123", ("",))[0] == "AVAILABLE", 60)
        reply = client.post("/v1/models/three:predict", json={"instances": [1.0]})
        assert reply.json() == {"predictions": [3.5]}
    assert server.terminate() == 0


def test_bad_command_lines_fail_fast_with_a_reason() -> None:
    for args, fragment in (
        (["--bogus_flag=1"], "unrecognized arguments: --bogus_flag=1"),
        (["--model_base_path=/x", "--grpc_socket_path=/y"], "--grpc_socket_path is not supported"),
        (["--model_base_path=/x", "--ssl_config_file=/y"], "TLS: cannot read /y"),
        ([], "--model_base_path"),
        (["--model_config_file=/does/not/exist"], "cannot read /does/not/exist"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "modelship_server", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 2, out.stderr
        assert fragment in out.stderr
        assert "Traceback" not in out.stderr
