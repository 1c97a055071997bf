"""`modelship fetch` from `python -m http.server`: a directory index walked recursively, archives,
and a path-traversal archive that must fail without writing outside the destination."""

from __future__ import annotations

import io
import shutil
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest
from storage_helpers import modelship_fetch, saved_model_files, tree


@pytest.fixture
def site(http_root: tuple[Path, str]) -> tuple[Path, str]:
    """A fresh folder on the server, and its URL."""
    root, url = http_root
    name = uuid.uuid4().hex[:8]
    (root / name).mkdir()
    return root / name, f"{url}/{name}"


def write(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_directory_index_is_walked(site: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = site
    files = {**saved_model_files("1/"), **saved_model_files("2/"), "2/assets/with space.txt": b"a"}
    write(folder / "mnist", files)
    write(folder, {"mnist-other/1/saved_model.pb": b"not mine"})
    run = modelship_fetch(f"{url}/mnist/", tmp_path / "models")
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == files


def test_an_index_without_the_trailing_slash_holding_a_bare_model(
    site: tuple[Path, str], tmp_path: Path
) -> None:
    folder, url = site
    files = saved_model_files()
    write(folder / "m", files)
    run = modelship_fetch(f"{url}/m", tmp_path / "models")  # http.server redirects to m/
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == {f"1/{k}": v for k, v in files.items()}


def test_a_tar_gz(site: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = site
    files = saved_model_files("export/5/")
    (folder / "model.tar.gz").write_bytes(tar_gz(files))
    run = modelship_fetch(f"{url}/model.tar.gz", tmp_path / "models")
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == {k.removeprefix("export/"): v for k, v in files.items()}


def test_a_zip(site: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = site
    files = saved_model_files()
    with zipfile.ZipFile(folder / "model.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    run = modelship_fetch(f"{url}/model.zip", tmp_path / "models")
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == {f"1/{k}": v for k, v in files.items()}


def test_a_path_traversal_tar_fails_and_writes_nothing(
    site: tuple[Path, str], tmp_path: Path
) -> None:
    folder, url = site
    evil = {**saved_model_files("1/"), "../../escaped.txt": b"pwned"}
    (folder / "evil.tar.gz").write_bytes(tar_gz(evil))
    dest = tmp_path / "a" / "b" / "models"
    run = modelship_fetch(f"{url}/evil.tar.gz", dest)
    assert run.code == 1
    assert run.stderr == (
        f"cannot read {url}/evil.tar.gz: refusing path '../../escaped.txt': "
        "it leads outside the destination\n"
    )
    assert list(dest.iterdir()) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_not_found(site: tuple[Path, str], tmp_path: Path) -> None:
    _, url = site
    run = modelship_fetch(f"{url}/missing.tar.gz?token=s3cr3t", tmp_path / "models")
    assert run.code == 1
    path = url.split("127.0.0.1:", 1)[1].split("/", 1)[1]
    assert (
        run.stderr
        == f"cannot read {url}/missing.tar.gz: not found (HTTP 404): /{path}/missing.tar.gz\n"
    )
    assert "s3cr3t" not in run.stderr


def test_a_local_folder_by_file_uri(tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = saved_model_files("3/")
    write(source, files)
    run = modelship_fetch(f"file://{source}", tmp_path / "models")
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == files
    shutil.rmtree(source)
