"""`modelship fetch` against a real S3 server (versitygw) holding damaged or hostile objects:
objects changed behind the server's back (so its ETag and checksums no longer match), archive
bombs, cut tars and models over the size limit. Every case fails with one line and leaves the
destination empty."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import pytest
from storage_helpers import (
    S3Server,
    cut_after_last_member,
    modelship_fetch,
    saved_model_files,
    tar_bytes,
)

TIMEOUT = 60


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    s3_server.admin().create_bucket(Bucket=name)
    return name


def put(s3_server: S3Server, bucket: str, files: dict[str, bytes]) -> None:
    client = s3_server.admin()
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)


def on_disk(s3_server: S3Server, bucket: str, key: str) -> Path:
    assert s3_server.data is not None, "this S3 server does not expose its folder"
    path = s3_server.data / bucket / key
    assert path.is_file()
    return path


# botocore checks versitygw's x-amz-checksum-* headers itself; with that check left to
# "when_required", the ETag (an MD5) is what catches the damage.
CHECKS = {
    "flexible-checksums": {},
    "etag-md5": {"AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"},
}


def fetch(
    s3_server: S3Server, uri: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    env = {**s3_server.env(), **(env or {})}
    result = modelship_fetch(uri, tmp_path / "models", env, args, TIMEOUT)
    assert result.termination_log == result.stderr
    assert list((tmp_path / "models").iterdir()) == []
    return result.code, result.stderr


@pytest.mark.parametrize("check", CHECKS)
def test_an_object_changed_behind_the_servers_back(
    s3_server: S3Server, bucket: str, tmp_path: Path, check: str
) -> None:
    files = saved_model_files("m/1/")
    put(s3_server, bucket, files)
    path = on_disk(s3_server, bucket, "m/1/variables/variables.data-00000-of-00001")
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same length: only a checksum can tell
    path.write_bytes(bytes(data))
    code, stderr = fetch(s3_server, f"s3://{bucket}/m", tmp_path, env=CHECKS[check])
    assert code == 1
    assert stderr.startswith(
        f"cannot read s3://{bucket}/m: variables.data-00000-of-00001 is corrupt: "
    )
    assert ("its MD5" in stderr) == (check == "etag-md5")


@pytest.mark.parametrize("check", CHECKS)
def test_an_object_cut_short_behind_the_servers_back(
    s3_server: S3Server, bucket: str, tmp_path: Path, check: str
) -> None:
    put(s3_server, bucket, saved_model_files("m/1/"))
    path = on_disk(s3_server, bucket, "m/1/saved_model.pb")
    path.write_bytes(path.read_bytes()[:20])
    code, stderr = fetch(s3_server, f"s3://{bucket}/m", tmp_path, env=CHECKS[check])
    assert code == 1
    assert stderr.startswith(f"cannot read s3://{bucket}/m: saved_model.pb is corrupt: ")
    assert ("its MD5" in stderr) == (check == "etag-md5")


def test_a_tar_cut_at_a_member_boundary(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    whole = tar_bytes(saved_model_files("1/"))
    put(s3_server, bucket, {"m.tar": cut_after_last_member(whole)})
    code, stderr = fetch(s3_server, f"s3://{bucket}/m.tar", tmp_path)
    assert (code, stderr) == (
        1,
        f"cannot read s3://{bucket}/m.tar: m.tar is truncated: "
        "the tar has no end-of-archive blocks\n",
    )


def test_an_archive_bomb(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    bomb = gzip.compress(tar_bytes({"1/saved_model.pb": bytes(32 << 20)}), compresslevel=9)
    put(s3_server, bucket, {"bomb.tgz": bomb})
    code, stderr = fetch(s3_server, f"s3://{bucket}/bomb.tgz", tmp_path)
    assert code == 1
    assert stderr.startswith(f"cannot read s3://{bucket}/bomb.tgz: bomb.tgz would expand ")
    assert stderr.endswith("over the limit of 200 (--max-ratio, MODELSHIP_FETCH_MAX_RATIO)\n")


def test_a_prefix_over_the_size_limit(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    put(s3_server, bucket, {**saved_model_files("m/1/"), "m/1/variables/big": bytes(1 << 20)})
    code, stderr = fetch(s3_server, f"s3://{bucket}/m", tmp_path, "--max-bytes=512Ki")
    assert (code, stderr) == (
        1,
        f"cannot read s3://{bucket}/m: the download exceeds 524288 bytes "
        "(--max-bytes, MODELSHIP_FETCH_MAX_BYTES)\n",
    )


def test_a_prefix_with_too_many_objects(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    put(
        s3_server, bucket, {**saved_model_files("m/1/"), "m/1/assets/a": b"a", "m/1/assets/b": b"b"}
    )
    code, stderr = fetch(s3_server, f"s3://{bucket}/m", tmp_path, "--max-files=4")
    assert (code, stderr) == (
        1,
        f"cannot read s3://{bucket}/m: the source holds more than 4 files "
        "(--max-files, MODELSHIP_FETCH_MAX_FILES)\n",
    )
