"""Saving a stream: the announced length and MD5 must be met exactly."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from modelship_server.storage.errors import SourceError
from modelship_server.storage.limits import Limits, Meter
from modelship_server.storage.s3 import etag_md5
from modelship_server.storage.transfer import save

DATA = b"weights" * 1000
MD5 = hashlib.md5(DATA).hexdigest()


def test_a_whole_stream_is_saved_and_metered(tmp_path: Path) -> None:
    meter = Meter(Limits())
    save(io.BytesIO(DATA).read, tmp_path / "f", meter, length=len(DATA), md5=MD5.upper())
    assert (tmp_path / "f").read_bytes() == DATA
    assert meter.total == len(DATA)


def test_a_stream_cut_short_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^the download of f broke off: received 6000 of 7000"):
        save(io.BytesIO(DATA[:6000]).read, tmp_path / "f", Meter(Limits()), length=len(DATA))


def test_a_stream_longer_than_announced_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="longer than the announced 10 bytes"):
        save(io.BytesIO(DATA).read, tmp_path / "f", Meter(Limits()), length=10)


def test_a_wrong_md5_fails(tmp_path: Path) -> None:
    corrupt = b"x" + DATA[1:]
    with pytest.raises(SourceError, match=f"f is corrupt: its MD5 .* does not match .*{MD5}"):
        save(io.BytesIO(corrupt).read, tmp_path / "f", Meter(Limits()), md5=MD5)


def test_the_size_limit_applies_while_streaming(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="exceeds 100 bytes"):
        save(io.BytesIO(DATA).read, tmp_path / "f", Meter(Limits(max_bytes=100)))


@pytest.mark.parametrize(
    ("response", "md5"),
    [
        ({"ETag": f'"{MD5}"'}, MD5),
        ({"ETag": f'"{MD5}-3"'}, None),  # multipart: not an MD5 of the content
        ({"ETag": f'"{MD5}"', "ServerSideEncryption": "aws:kms"}, None),
        ({"ETag": f'"{MD5}"', "SSECustomerAlgorithm": "AES256"}, None),
        ({"ETag": '"abc"'}, None),
        ({}, None),
    ],
)
def test_which_etags_are_md5s(response: dict[str, str], md5: str | None) -> None:
    assert etag_md5(response) == md5
