"""GOOGLE_APPLICATION_CREDENTIALS as a file path or as the JSON key itself (what envFrom can carry);
loading is offline, no token is fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from modelship_server.storage.errors import SourceError
from modelship_server.storage.gcs import client_from_env


def service_account_key() -> dict[str, Any]:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "reader@proj-1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(service_account_key()))
    client = client_from_env({"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert client.project == "proj-1"
    assert client._credentials.service_account_email == "reader@proj-1.iam.gserviceaccount.com"


def test_the_key_itself_in_the_variable() -> None:
    client = client_from_env({"GOOGLE_APPLICATION_CREDENTIALS": json.dumps(service_account_key())})
    assert client._credentials.service_account_email == "reader@proj-1.iam.gserviceaccount.com"


def test_no_variable_means_anonymous() -> None:
    assert client_from_env({}).project is None


def test_a_broken_inline_key_is_not_echoed() -> None:
    with pytest.raises(SourceError) as caught:
        client_from_env({"GOOGLE_APPLICATION_CREDENTIALS": '{"private_key": "BEGIN secret'})
    assert (
        str(caught.value)
        == "cannot load GOOGLE_APPLICATION_CREDENTIALS (inline JSON): JSONDecodeError"
    )


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"GOOGLE_APPLICATION_CREDENTIALS \(/nonexistent/key.json\)"
    ):
        client_from_env({"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"})


def test_configurations_that_could_run_programs_are_refused() -> None:
    setting = json.dumps({"type": "external_account", "credential_source": {"executable": {}}})
    with pytest.raises(SourceError, match="credential type 'external_account' is not supported"):
        client_from_env({"GOOGLE_APPLICATION_CREDENTIALS": setting})
