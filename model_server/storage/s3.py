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
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from .errors import SourceError
from .paths import safe_join, under_prefix
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


def download(location: Location, target: Path) -> None:
    client = client_from_env()
    try:
        keys = list(_keys(client, location.bucket, location.prefix))
        if not keys:
            raise SourceError("no objects under this prefix")
        for key, relative in keys:
            dest = safe_join(target, relative)
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(location.bucket, key, str(dest))
    except ClientError as e:
        raise SourceError(describe(e)) from e
    except EndpointConnectionError as e:
        raise SourceError(
            f"cannot connect to the S3 endpoint {client.meta.endpoint_url}: check "
            "AWS_ENDPOINT_URL and the network"
        ) from e
    except BotoCoreError as e:
        raise SourceError(f"{type(e).__name__}: {e}") from e


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
