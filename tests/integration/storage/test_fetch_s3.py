"""`modelship fetch` against a real S3 API server (versitygw), driven by a real boto3 client."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import (
    REAL_MODEL,
    SECRET_KEY,
    S3Server,
    modelship_fetch,
    saved_model_files,
    tree,
)


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"models-{uuid.uuid4().hex[:8]}"
    s3_server.admin().create_bucket(Bucket=name)
    return name


def put(client: Any, bucket: str, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)


def test_a_prefix_with_versions(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    v1, v2 = saved_model_files("team/mnist/1/"), saved_model_files("team/mnist/2/")
    put(s3_server.admin(), bucket, {**v1, **v2, **saved_model_files("team/mnist-old/9/")})
    run = modelship_fetch(f"s3://{bucket}/team/mnist", tmp_path / "models", s3_server.env())
    assert run.code == 0, run.stderr
    expected = {k.removeprefix("team/mnist/"): v for k, v in {**v1, **v2}.items()}
    assert tree(tmp_path / "models") == expected  # mnist-old/ shares the prefix, not the folder
    assert "fetched 6 files" in run.stdout


def test_a_bare_saved_model_becomes_version_1(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    files = saved_model_files("export/")
    put(s3_server.admin(), bucket, files)
    run = modelship_fetch(f"s3://{bucket}/export/", tmp_path / "models", s3_server.env())
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == {
        "1/" + k.removeprefix("export/"): v for k, v in files.items()
    }


def test_an_archive_object(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in saved_model_files("model/3/").items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    put(s3_server.admin(), bucket, {"m.tar.gz": buf.getvalue()})
    run = modelship_fetch(f"s3://{bucket}/m.tar.gz", tmp_path / "models", s3_server.env())
    assert run.code == 0, run.stderr
    assert sorted(tree(tmp_path / "models")) == sorted(
        k.removeprefix("model/") for k in saved_model_files("model/3/")
    )


def test_the_real_half_plus_two_model(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    if not REAL_MODEL.is_dir():
        pytest.skip(f"TF Serving's test models are not at {REAL_MODEL}")
    files = {
        f"hp2/{p.relative_to(REAL_MODEL).as_posix()}": p.read_bytes()
        for p in REAL_MODEL.rglob("*")
        if p.is_file()
    }
    put(s3_server.admin(), bucket, files)
    run = modelship_fetch(f"s3://{bucket}/hp2", tmp_path / "models", s3_server.env())
    assert run.code == 0, run.stderr
    assert tree(tmp_path / "models") == tree(REAL_MODEL)
    assert "versions 00000123, 00000124" in run.stdout


def test_a_missing_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    run = modelship_fetch("s3://no-such-bucket/m", tmp_path / "models", s3_server.env())
    line = "cannot read s3://no-such-bucket/m: NoSuchBucket: the bucket does not exist\n"
    assert (run.code, run.stderr, run.termination_log) == (1, line, line)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_prefix(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    put(s3_server.admin(), bucket, saved_model_files("other/1/"))
    run = modelship_fetch(f"s3://{bucket}/m", tmp_path / "models", s3_server.env())
    assert run.code == 1
    assert run.stderr == f"cannot read s3://{bucket}/m: no objects under this prefix\n"


def test_wrong_credentials_name_the_variable_not_the_secret(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    put(s3_server.admin(), bucket, saved_model_files("m/1/"))
    wrong = "wrong-secret-7f3e9a"
    run = modelship_fetch(f"s3://{bucket}/m", tmp_path / "models", s3_server.env(secret=wrong))
    assert run.code == 1
    assert run.stderr == (
        f"cannot read s3://{bucket}/m: SignatureDoesNotMatch: the secret key does not match "
        "the access key: check AWS_SECRET_ACCESS_KEY\n"
    )
    for secret in (wrong, SECRET_KEY):
        assert secret not in run.stderr + run.stdout + run.termination_log
    assert list((tmp_path / "models").iterdir()) == []


def test_anonymous_access_to_a_private_bucket_is_denied(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    put(s3_server.admin(), bucket, saved_model_files("m/1/"))
    run = modelship_fetch(
        f"s3://{bucket}/m", tmp_path / "models", {"AWS_ENDPOINT_URL": s3_server.endpoint}
    )
    assert run.code == 1
    assert run.stderr.startswith(f"cannot read s3://{bucket}/m: AccessDenied: access denied")


def test_no_saved_model_under_the_prefix(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    put(s3_server.admin(), bucket, {"m/model.h5": b"keras", "m/README.md": b"hi"})
    run = modelship_fetch(f"s3://{bucket}/m", tmp_path / "models", s3_server.env())
    assert run.code == 1
    assert run.stderr.startswith(f"cannot read s3://{bucket}/m: no SavedModel found")
    assert "README.md, model.h5" in run.stderr
