"""The one kind of failure `modelship fetch` reports, and how its message is kept safe to show."""

from __future__ import annotations

import os
import re

# Environment variables whose values must never reach a log line or a pod's status.
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
)
# Messages end up in a pod's termination message, which Kubernetes caps at 4 KiB.
MAX_MESSAGE = 1000
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#]*)[?#]\S*", re.IGNORECASE)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


class SourceError(Exception):
    """A storage backend could not deliver the model; the text says why, without the URI."""


class FetchError(Exception):
    """A failure the user can act on; its text is the single line they read."""


def redact(text: str) -> str:
    """One line with no credentials: query strings (signed URLs), user:password@ and the values of
    secret environment variables are removed."""
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    text = _USERINFO.sub(r"\1<redacted>@", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "<redacted>")
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"
