"""The S3 adapter's pure parts: client settings from the environment and error wording."""

from __future__ import annotations

from botocore import UNSIGNED
from botocore.exceptions import ClientError
from modelship_server.storage.s3 import client_from_env, describe


def error(code: str, message: str = "server text", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "ListObjectsV2",
    )


def test_known_codes_get_a_hint() -> None:
    assert describe(error("NoSuchBucket")) == "NoSuchBucket: the bucket does not exist"
    assert describe(error("InvalidAccessKeyId")).endswith("check AWS_ACCESS_KEY_ID")


def test_a_bare_403_from_head_says_access_denied() -> None:
    assert describe(error("403", message="")).startswith("access denied")


def test_unknown_codes_keep_the_server_text() -> None:
    assert describe(error("SlowDown", "Please reduce your request rate.")) == (
        "SlowDown: Please reduce your request rate."
    )


def test_no_credentials_means_unsigned_requests() -> None:
    client = client_from_env({})
    assert client.meta.config.signature_version is UNSIGNED
    assert client.meta.region_name == "us-east-1"


def test_endpoint_and_region_come_from_the_environment() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    }
    client = client_from_env(env)
    assert client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client._request_signer._credentials.access_key == "id"
