"""Reading the links of a directory index as python -m http.server, nginx and Apache write them."""

from __future__ import annotations

from modelship_server.storage.web import index_entries

BASE = "http://h/models/mnist/"


def test_python_http_server() -> None:
    html = '<ul><li><a href="1/">1/</a></li><li><a href="notes%20v2.txt">notes v2.txt</a></li></ul>'
    assert index_entries(BASE, html) == ["1/", "notes%20v2.txt"]


def test_nginx_autoindex_parent_link_is_left_out() -> None:
    html = '<pre><a href="../">../</a>\n<a href="saved_model.pb">saved_model.pb</a> 12</pre>'
    assert index_entries(BASE, html) == ["saved_model.pb"]


def test_apache_sort_links_and_absolute_parent_are_left_out() -> None:
    html = (
        '<a href="?C=N;O=D">Name</a><a href="?C=M;O=A">Last modified</a>'
        '<a href="/models/">Parent Directory</a><a href="/models/mnist/variables/">variables/</a>'
    )
    assert index_entries(BASE, html) == ["variables/"]


def test_other_sites_fragments_and_duplicates_are_left_out() -> None:
    html = (
        '<a href="https://elsewhere/x">x</a><a href="#top">top</a>'
        '<a href="a.bin">a</a><a href="a.bin#frag">a again</a><a>no href</a>'
    )
    assert index_entries(BASE, html) == ["a.bin"]
