"""Pure parts of the autoscaler's queries and Prometheus client (the real runs are in
tests/integration/test_autoscaling_prometheus.py)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from modelship_operator.autoscaling.prometheus import (
    MAX_GET_QUERY,
    PrometheusClient,
    PrometheusUnavailable,
    Sample,
)
from modelship_operator.autoscaling.queries import (
    KINDS,
    combined_promql,
    kind_query,
    split_by_key,
    tagged,
    unbalanced,
)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_grouped_by_object_and_limited_to_model_servers(kind: str) -> None:
    query = kind_query(kind, "7s")
    assert "sum by (namespace, modeldeployment" in query
    assert 'modeldeployment!=""' in query
    assert ("[7s]" in query) == (kind in ("requestsPerSecond", "cpuUtilization", "p99LatencyMs"))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="inflightRequests"):
        kind_query("memory", "5s")


def test_combined_query_tags_each_query_with_its_object() -> None:
    combined = combined_promql({("b", "y"): "vector(2)", ("a", "x"): "up"})
    first, second = combined.split(" or ")
    assert first == f"({tagged(('a', 'x'), 'up')})"
    assert '"namespace", "a"' in first
    assert '"modeldeployment", "x"' in first
    assert '"namespace", "b"' in second
    assert "sum(\nvector(2)\n)" in second


def test_split_by_key_ignores_series_without_the_object_labels() -> None:
    samples = [
        Sample({"namespace": "a", "modeldeployment": "x"}, 1.5),
        Sample({"namespace": "a"}, 9.0),
        Sample({}, 3.0),
    ]
    assert split_by_key(samples) == {("a", "x"): 1.5}


@pytest.mark.parametrize(
    "query",
    [
        "up",
        'sum(rate(x{a="(", b=")"}[5m])) by (pod)',
        "sum(x) # a comment with ) in it",
        "`raw ) string`",
        r'x{a="esc \" ) aped"}',
    ],
)
def test_balanced_queries_pass(query: str) -> None:
    assert unbalanced(query) is None


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sum(rate(x[5m])", "left open"),
        ("x) or (y", "closes nothing"),
        ("x{a=']'}]", "closes nothing"),
        ('x{a="open}', "not closed"),
        ("(x]", "closes nothing"),
        ("  ", "empty"),
    ],
)
def test_unbalanced_queries_are_named(query: str, problem: str) -> None:
    message = unbalanced(query)
    assert message is not None
    assert problem in message


def test_token_is_read_on_each_call_and_never_in_messages(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first-secret\n")
    client = PrometheusClient("http://prometheus:9090/", bearer_token_file=str(token))
    assert client._request("up").get_header("Authorization") == "Bearer first-secret"
    token.write_text("second-secret")
    assert client._request("up").get_header("Authorization") == "Bearer second-secret"
    token.unlink()
    with pytest.raises(PrometheusUnavailable) as missing:
        client._request("up")
    assert str(token) in str(missing.value)
    assert "secret" not in str(missing.value).replace(str(tmp_path), "")


def test_long_queries_are_posted() -> None:
    client = PrometheusClient("http://prometheus:9090")
    short = client._request("up")
    assert short.get_method() == "GET"
    assert short.full_url == "http://prometheus:9090/api/v1/query?query=up"
    long_query = "up or " * (MAX_GET_QUERY // 5)
    posted = client._request(long_query)
    assert posted.get_method() == "POST"
    assert isinstance(posted.data, bytes)
    assert urllib.parse.parse_qs(posted.data.decode()) == {"query": [long_query]}


def test_credentials_in_the_url_stay_out_of_messages() -> None:
    client = PrometheusClient("http://user:pa55@127.0.0.1:1/")
    assert "pa55" not in client.display_url
    with pytest.raises(PrometheusUnavailable) as down:
        client.query("up")
    assert "pa55" not in str(down.value)


def test_bad_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        PrometheusClient("prometheus:9090")
