"""Names from stores and archives become paths that stay inside the destination."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from modelship_server.storage.errors import SourceError
from modelship_server.storage.paths import safe_join, safe_relative, under_prefix


def test_relative_names_are_tidied() -> None:
    assert safe_relative("a//b/./c") == PurePosixPath("a/b/c")


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a\\..\\x", "C:/x", ""])
def test_escaping_names_are_refused(name: str) -> None:
    with pytest.raises(SourceError):
        safe_relative(name)


def test_safe_join_stays_under_root(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "1/variables/v.index") == tmp_path / "1" / "variables" / "v.index"


@pytest.mark.parametrize(
    ("key", "prefix", "relative"),
    [
        ("m/1/saved_model.pb", "m", "1/saved_model.pb"),
        ("m2/1/saved_model.pb", "m", None),  # a sibling that merely starts with the prefix
        ("m/", "m", None),  # a folder marker
        ("models/m.tar.gz", "models/m.tar.gz", "m.tar.gz"),  # the prefix names one object
        ("1/saved_model.pb", "", "1/saved_model.pb"),  # the whole bucket
    ],
)
def test_under_prefix(key: str, prefix: str, relative: str | None) -> None:
    assert under_prefix(key, prefix) == relative
