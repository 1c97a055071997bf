"""storageUri parsing and the form in which a URI may be shown."""

from __future__ import annotations

import pytest
from modelship_server.storage.errors import FetchError
from modelship_server.storage.uri import display_uri, parse_uri


def test_s3_bucket_and_prefix() -> None:
    loc = parse_uri("s3://models/team/mnist/")
    assert (loc.scheme, loc.bucket, loc.prefix) == ("s3", "models", "team/mnist")


def test_gs_bucket_without_prefix() -> None:
    loc = parse_uri("gs://models")
    assert (loc.bucket, loc.prefix) == ("models", "")


def test_http_keeps_the_whole_url() -> None:
    url = "https://host/m.tar.gz?X-Amz-Signature=abc"
    assert parse_uri(url).url == url


def test_file_path_is_unquoted() -> None:
    assert parse_uri("file:///srv/my%20model").path == "/srv/my model"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("ftp://host/m", "unsupported scheme"),
        ("/just/a/path", "unsupported scheme"),
        ("s3:///prefix", "no bucket name"),
        ("https:///m", "no host name"),
        ("file://server/share", "local path"),
    ],
)
def test_bad_uris_say_why(uri: str, says: str) -> None:
    with pytest.raises(FetchError, match=says):
        parse_uri(uri)


def test_display_drops_signatures_and_passwords() -> None:
    shown = display_uri("https://user:pw@host/m.tar.gz?X-Amz-Signature=secret#x")
    assert shown == "https://host/m.tar.gz"
