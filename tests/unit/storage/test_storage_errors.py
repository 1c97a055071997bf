"""Messages are one line and carry no credentials."""

from __future__ import annotations

import pytest
from modelship_server.storage.errors import MAX_MESSAGE, redact


def test_signed_urls_lose_their_query() -> None:
    line = redact("cannot read https://h/m.tar.gz?X-Amz-Credential=AKIA&X-Amz-Signature=ff: 403")
    assert line == "cannot read https://h/m.tar.gz?<redacted> 403"


def test_user_info_is_removed() -> None:
    assert redact("at https://bob:hunter2@h/m") == "at https://<redacted>@h/m"


def test_secret_values_from_the_environment_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    assert "s3cr3t" not in redact("signature computed with s3cr3t-value failed")


def test_one_short_line() -> None:
    line = redact("a\nb\n\tc" + "x" * 5000)
    assert "\n" not in line
    assert len(line) <= MAX_MESSAGE
