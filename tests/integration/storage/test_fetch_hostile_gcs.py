"""`modelship fetch` against a real GCS API server (fake-gcs-server, objects kept as files)
holding damaged or hostile objects. Every case fails with one line and an empty destination."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from storage_helpers import cut_after_last_member, modelship_fetch, saved_model_files, tar_bytes

TIMEOUT = 60


@pytest.fixture
def bucket(gcs_on_disk: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> storage.Bucket:
    endpoint, _ = gcs_on_disk
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    return client.create_bucket(f"hostile-{uuid.uuid4().hex[:8]}")


def put(bucket: storage.Bucket, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        bucket.blob(name).upload_from_string(data)


def fetch(gcs_on_disk: tuple[str, Path], uri: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"STORAGE_EMULATOR_HOST": gcs_on_disk[0]}
    result = modelship_fetch(uri, tmp_path / "models", env, args, TIMEOUT)
    assert result.termination_log == result.stderr
    assert list((tmp_path / "models").iterdir()) == []
    return result.code, result.stderr


def test_the_server_serves_a_whole_model(
    gcs_on_disk: tuple[str, Path], bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, saved_model_files("m/1/"))
    env = {"STORAGE_EMULATOR_HOST": gcs_on_disk[0]}
    result = modelship_fetch(f"gs://{bucket.name}/m", tmp_path / "models", env, (), TIMEOUT)
    assert result.code == 0, result.stderr


def test_an_object_changed_behind_the_servers_back(
    gcs_on_disk: tuple[str, Path], bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, saved_model_files("m/1/"))
    path = gcs_on_disk[1] / bucket.name / "m/1/variables/variables.index"
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF  # same length: only the crc32c can tell
    path.write_bytes(bytes(data))
    code, stderr = fetch(gcs_on_disk, f"gs://{bucket.name}/m", tmp_path)
    assert (code, stderr) == (
        1,
        f"cannot read gs://{bucket.name}/m: variables.index is corrupt: its checksum does not "
        "match the object's crc32c\n",
    )


def test_an_object_cut_short_behind_the_servers_back(
    gcs_on_disk: tuple[str, Path], bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, saved_model_files("m/1/"))
    path = gcs_on_disk[1] / bucket.name / "m/1/saved_model.pb"
    path.write_bytes(path.read_bytes()[:10])
    code, stderr = fetch(gcs_on_disk, f"gs://{bucket.name}/m", tmp_path)
    assert (code, stderr) == (
        1,
        f"cannot read gs://{bucket.name}/m: saved_model.pb is corrupt: its checksum does not "
        "match the object's crc32c\n",
    )


def test_a_tar_cut_at_a_member_boundary(
    gcs_on_disk: tuple[str, Path], bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, {"m.tar": cut_after_last_member(tar_bytes(saved_model_files("1/")))})
    code, stderr = fetch(gcs_on_disk, f"gs://{bucket.name}/m.tar", tmp_path)
    assert (code, stderr) == (
        1,
        f"cannot read gs://{bucket.name}/m.tar: m.tar is truncated: "
        "the tar has no end-of-archive blocks\n",
    )


def test_an_archive_bomb(
    gcs_on_disk: tuple[str, Path], bucket: storage.Bucket, tmp_path: Path
) -> None:
    bomb = gzip.compress(tar_bytes({"1/saved_model.pb": bytes(32 << 20)}), compresslevel=9)
    put(bucket, {"bomb.tar.gz": bomb})
    code, stderr = fetch(gcs_on_disk, f"gs://{bucket.name}/bomb.tar.gz", tmp_path)
    assert code == 1
    assert stderr.startswith(f"cannot read gs://{bucket.name}/bomb.tar.gz: bomb.tar.gz would ")
    assert stderr.endswith("over the limit of 200 (--max-ratio, MODELSHIP_FETCH_MAX_RATIO)\n")


def test_a_prefix_over_the_size_limit(
    gcs_on_disk: tuple[str, Path], bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, {**saved_model_files("m/1/"), "m/1/variables/big": bytes(1 << 20)})
    code, stderr = fetch(gcs_on_disk, f"gs://{bucket.name}/m", tmp_path, "--max-bytes=512Ki")
    assert (code, stderr) == (
        1,
        f"cannot read gs://{bucket.name}/m: the download exceeds 524288 bytes "
        "(--max-bytes, MODELSHIP_FETCH_MAX_BYTES)\n",
    )
