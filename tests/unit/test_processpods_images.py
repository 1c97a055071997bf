"""The image → program table and what a container's command line becomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_localcluster.processpods import images
from modelship_localcluster.processpods.spec import Mount, map_argv

BIN = Path("/venv/bin")
TABLE = images.default_images(BIN)
SERVER_IMAGE = "ghcr.io/modelship/modelship:dev"


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("ghcr.io/modelship/modelship:dev", "ghcr.io/modelship/modelship"),
        ("ghcr.io/modelship/modelship@sha256:abc", "ghcr.io/modelship/modelship"),
        ("ghcr.io/modelship/modelship:1.0@sha256:abc", "ghcr.io/modelship/modelship"),
        ("localhost:5000/team/app:v2", "localhost:5000/team/app"),
        ("localhost:5000/team/app", "localhost:5000/team/app"),
        ("nginx", "nginx"),
    ],
)
def test_repository_drops_tag_and_digest_only(image: str, repository: str) -> None:
    assert images.repository(image) == repository


def test_server_image_without_command_runs_the_model_server_on_the_pod_address() -> None:
    image = images.resolve(TABLE, SERVER_IMAGE)
    launch = images.launch(image, {"args": ["--model_name=m"]})
    argv = images.finish_argv(launch, pod_ip="127.77.0.9", termination_log=Path("/p/t"))
    assert argv == [str(BIN / "modelship-server"), "--model_name=m", "--host=127.77.0.9"]


def test_storage_tool_command_gets_the_termination_log_file() -> None:
    image = images.resolve(TABLE, SERVER_IMAGE)
    launch = images.launch(image, {"command": ["modelship", "fetch", "--uri=s3://b/m"]})
    argv = images.finish_argv(launch, pod_ip="127.77.0.9", termination_log=Path("/p/t"))
    assert argv == [str(BIN / "modelship"), "fetch", "--uri=s3://b/m", "--termination-log=/p/t"]


def test_unknown_image_and_unknown_program_are_refused() -> None:
    with pytest.raises(images.ImageNotFoundError):
        images.resolve(TABLE, "nginx:1.27")
    image = images.resolve(TABLE, SERVER_IMAGE)
    with pytest.raises(images.ProgramNotFoundError, match='"python3"'):
        images.launch(image, {"command": ["python3", "-c", "1"]})
    message = images.not_pullable_message("nginx:1.27", "process-0", TABLE)
    assert message == (
        "image nginx:1.27 has no local program on node process-0 "
        "(this node runs: ghcr.io/modelship/modelship)"
    )


def test_extra_image_runs_its_program_and_names_it_by_basename(tmp_path: Path) -> None:
    repository, image = images.extra_image(f"example.test/app={tmp_path / 'fakeapp'}")
    assert repository == "example.test/app"
    assert image.entrypoint == str(tmp_path / "fakeapp")
    assert images.program_argv(image, ["fakeapp", "--check"]) == [
        str(tmp_path / "fakeapp"),
        "--check",
    ]
    with pytest.raises(ValueError, match="REPO=PROGRAM"):
        images.extra_image("no-program")


def test_mount_paths_in_arguments_point_into_volume_folders_longest_first() -> None:
    table = [
        Mount("/mnt/models", Path("/pod/volumes/model")),
        Mount("/mnt", Path("/pod/volumes/mnt")),
    ]
    argv = map_argv(
        [
            "/mnt/prog",
            "--model_base_path=/mnt/models",
            "/mnt/models/1",
            "--x=/mnt/other",
            "/mntx",
            "file:///mnt/models",
        ],
        table,
    )
    assert argv == [
        "/mnt/prog",
        "--model_base_path=/pod/volumes/model",
        "/pod/volumes/model/1",
        "--x=/pod/volumes/mnt/other",
        "/mntx",
        "file:///pod/volumes/model",
    ]
