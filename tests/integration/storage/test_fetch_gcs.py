"""`modelship fetch` against a real GCS JSON API server: fake-gcs-server, via
STORAGE_EMULATOR_HOST."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from storage_helpers import modelship_fetch, saved_model_files, tree


@pytest.fixture
def bucket(gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> storage.Bucket:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    return client.create_bucket(f"models-{uuid.uuid4().hex[:8]}")


def put(bucket: storage.Bucket, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        bucket.blob(name).upload_from_string(data)


def test_a_prefix_with_versions(gcs_endpoint: str, bucket: storage.Bucket, tmp_path: Path) -> None:
    v1, v7 = saved_model_files("m/1/"), saved_model_files("m/7/")
    put(bucket, {**v1, **v7, **saved_model_files("m2/5/")})
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint}
    run = modelship_fetch(f"gs://{bucket.name}/m", tmp_path / "models", env)
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == {k.removeprefix("m/"): v for k, v in {**v1, **v7}.items()}


def test_a_bare_saved_model_becomes_version_1(
    gcs_endpoint: str, bucket: storage.Bucket, tmp_path: Path
) -> None:
    files = saved_model_files()
    put(bucket, files)
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint}
    run = modelship_fetch(f"gs://{bucket.name}", tmp_path / "models", env)
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == {f"1/{k}": v for k, v in files.items()}


def test_a_missing_bucket(gcs_endpoint: str, tmp_path: Path) -> None:
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint}
    run = modelship_fetch("gs://no-such-bucket/m", tmp_path / "models", env)
    line = "cannot read gs://no-such-bucket/m: NotFound: the bucket does not exist\n"
    assert (run.code, run.stderr, run.termination_log) == (1, line, line)


def test_a_missing_prefix(gcs_endpoint: str, bucket: storage.Bucket, tmp_path: Path) -> None:
    put(bucket, saved_model_files("other/1/"))
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint}
    run = modelship_fetch(f"gs://{bucket.name}/m", tmp_path / "models", env)
    assert run.code == 1
    assert run.stderr == f"cannot read gs://{bucket.name}/m: no objects under this prefix\n"


def test_a_broken_credentials_file_is_named(gcs_endpoint: str, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account", "private_key": "-----BEGIN secret"}')
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint, "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
    run = modelship_fetch("gs://any/m", tmp_path / "models", env)
    assert run.code == 1
    assert run.stderr.startswith(
        f"cannot read gs://any/m: cannot load GOOGLE_APPLICATION_CREDENTIALS ({key})"
    )
    assert "BEGIN" not in run.stderr
