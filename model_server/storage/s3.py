"""s3:// with boto3. Credentials, region and endpoint come only from the environment (the user's
Secret); with no credentials the requests are unsigned, for public buckets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    FlexibleChecksumError,
)

from .errors import SourceError
from .limits import Meter
from .paths import safe_join, under_prefix
from .transfer import save
from .uri import Location

# What a user should check for the error codes S3 and its look-alikes return.
HINTS = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied: check the credentials in the Secret and the bucket's policy",
    "403": "access denied: check the credentials in the Secret and the bucket's policy",
    "InvalidAccessKeyId": "the access key is not known to the server: check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the secret key does not match the access key: check "
    "AWS_SECRET_ACCESS_KEY",
    "ExpiredToken": "the session token has expired: renew AWS_SESSION_TOKEN",
    "InvalidToken": "the session token is not valid: check AWS_SESSION_TOKEN",
    "PermanentRedirect": "the bucket is in another region: set AWS_REGION",
    "AuthorizationHeaderMalformed": "wrong region for this bucket: set AWS_REGION",
}


def client_from_env(env: dict[str, str] | None = None) -> Any:
    """An S3 client from AWS_* variables alone: explicit keys or unsigned, so boto3 never
    falls back to ~/.aws files or instance metadata for credentials."""
    env = dict(os.environ) if env is None else env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    # S3-compatible stores on a plain host:port cannot take bucket.host names.
    options: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}}
    if endpoint:
        options["s3"] = {"addressing_style": "path"}
    credentials: dict[str, Any] = {}
    if key and secret:
        credentials = {
            "aws_access_key_id": key,
            "aws_secret_access_key": secret,
            "aws_session_token": env.get("AWS_SESSION_TOKEN") or None,
        }
    else:
        options["signature_version"] = UNSIGNED
    return boto3.session.Session().client(
        "s3", region_name=region, endpoint_url=endpoint, config=Config(**options), **credentials
    )


def download(location: Location, target: Path, meter: Meter) -> None:
    client = client_from_env()
    try:
        keys = list(_keys(client, location.bucket, location.prefix))
        if not keys:
            raise SourceError("no objects under this prefix")
        for key, relative in keys:
            dest = safe_join(target, relative)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _get(client, location.bucket, key, dest, meter)
    except ClientError as e:
        raise SourceError(describe(e)) from e
    except EndpointConnectionError as e:
        raise SourceError(
            f"cannot connect to the S3 endpoint {client.meta.endpoint_url}: check "
            "AWS_ENDPOINT_URL and the network"
        ) from e
    except BotoCoreError as e:
        raise SourceError(f"{type(e).__name__}: {e}") from e


def _get(client: Any, bucket: str, key: str, dest: Path, meter: Meter) -> None:
    """One object, streamed so the meter sees every chunk, checked against its ContentLength and,
    when its ETag is an MD5, its content."""
    meter.check_time()
    response = client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        save(
            body.read,
            dest,
            meter,
            length=response.get("ContentLength"),
            md5=etag_md5(response),
        )
    except FlexibleChecksumError as e:  # botocore's own check of x-amz-checksum-* headers
        raise SourceError(f"{dest.name} is corrupt: {e}") from e
    finally:
        body.close()


def etag_md5(response: dict[str, Any]) -> str | None:
    """The object's MD5 when its ETag is one: not for multipart uploads ("…-3") or objects
    encrypted with KMS or a customer key, whose ETags are opaque."""
    etag = str(response.get("ETag") or "").strip('"').lower()
    encrypted = response.get("SSECustomerAlgorithm") or response.get("SSEKMSKeyId")
    if encrypted or response.get("ServerSideEncryption") == "aws:kms":
        return None
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
        return etag
    return None


def describe(error: ClientError) -> str:
    info = error.response.get("Error", {})
    code = str(info.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    hint = HINTS.get(code) or info.get("Message") or "request failed"
    return f"{code}: {hint}" if code != "403" else hint


def _keys(client: Any, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(key, path below the prefix) for each object the URI names."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = under_prefix(obj["Key"], prefix)
            if relative is not None:
                yield obj["Key"], relative
