"""`upload()` (the trainer's export) against real object stores: versitygw for s3:// and
fake-gcs-server for gs://. What it writes, `modelship fetch` reads back whole."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from modelship_server.storage.upload import UploadError, upload
from storage_helpers import S3Server, modelship_fetch, saved_model_files, tree


def folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / "export" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root / "export"


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_s3_upload_is_fetched_back_whole(
    s3_server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    bucket = f"up-{uuid.uuid4().hex[:8]}"
    s3_server.admin().create_bucket(Bucket=bucket)
    files = saved_model_files()
    upload(folder(tmp_path, files), f"s3://{bucket}/models/digits/1700000000")
    run = modelship_fetch(f"s3://{bucket}/models/digits", tmp_path / "fetched", s3_env)
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "fetched") == {f"1700000000/{k}": v for k, v in files.items()}


def test_s3_upload_errors_name_the_cause_without_secrets(
    s3_server: S3Server, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = folder(tmp_path, saved_model_files())
    with pytest.raises(UploadError, match="NoSuchBucket: the bucket does not exist"):
        upload(source, "s3://no-such-bucket/m/1")
    s3_server.admin().create_bucket(Bucket="up-denied")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret-value")
    with pytest.raises(UploadError, match="SignatureDoesNotMatch") as error:
        upload(source, "s3://up-denied/m/1")
    assert "a-wrong-secret-value" not in str(error.value)


@pytest.fixture
def gcs_bucket(gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> storage.Bucket:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    return client.create_bucket(f"up-{uuid.uuid4().hex[:8]}")


def test_gcs_upload_is_fetched_back_whole(
    gcs_endpoint: str, gcs_bucket: storage.Bucket, tmp_path: Path
) -> None:
    files = saved_model_files()
    upload(folder(tmp_path, files), f"gs://{gcs_bucket.name}/models/digits/1700000000")
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint}
    run = modelship_fetch(f"gs://{gcs_bucket.name}/models/digits", tmp_path / "fetched", env)
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "fetched") == {f"1700000000/{k}": v for k, v in files.items()}


def test_gcs_upload_to_a_missing_bucket(
    gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    with pytest.raises(UploadError, match="NotFound: the bucket does not exist"):
        upload(folder(tmp_path, saved_model_files()), "gs://no-such-bucket/m/1")
