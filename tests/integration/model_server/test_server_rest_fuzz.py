"""Fuzz the REST layer: whatever arrives, the answer is JSON, never a 5xx or a traceback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from server_process import ServerProcess

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["x", "b64", "y", "inputs", "name"]) | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=25,
)
models = st.sampled_from(["half_plus_two", "two_versions", "nope", "", "a/b", "%00"])
tf_bodies = st.fixed_dictionaries(
    {},
    optional={
        "instances": json_values,
        "inputs": json_values,
        "signature_name": st.sampled_from(
            ["serving_default", "classify_x_to_y", "regress_x_to_y", "??"]
        )
        | st.text(max_size=5),
        "examples": json_values,
        "context": json_values,
    },
)
v2_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "inputs", "zz"]),
        "datatype": st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", "FP16", "nope"]),
        "shape": st.lists(st.integers(min_value=-2, max_value=4), max_size=3),
    },
    optional={"data": json_values, "parameters": json_values},
)
v2_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(v2_tensor, max_size=3)},
    optional={"outputs": json_values, "id": json_values},
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    model = draw(models)
    kind = draw(st.sampled_from(["tf", "v2", "raw", "get"]))
    headers: dict[str, str] = {}
    if kind == "get":
        path = draw(
            st.sampled_from(
                [
                    f"/v1/models/{model}",
                    f"/v1/models/{model}/metadata",
                    f"/v1/models/{model}/versions/{draw(st.text(max_size=4))}",
                    f"/v1/models/{model}/labels/{draw(st.text(max_size=4))}/metadata",
                    f"/v2/models/{model}",
                    f"/v2/models/{model}/ready",
                    "/v2",
                    "/v2/health/ready",
                ]
            )
        )
        return "GET", path, b"", headers
    if kind == "tf":
        verb = draw(st.sampled_from(["predict", "classify", "regress", "other"]))
        body = json.dumps(draw(tf_bodies)).encode()
        return "POST", f"/v1/models/{model}:{verb}", body, headers
    if kind == "v2":
        body = json.dumps(draw(v2_bodies)).encode()
        if draw(st.booleans()):
            extra = draw(st.binary(max_size=40))
            headers["Inference-Header-Content-Length"] = str(
                draw(st.integers(min_value=-1, max_value=len(body) + 5))
            )
            body += extra
        return "POST", f"/v2/models/{model}/infer", body, headers
    body = draw(st.binary(max_size=200))
    return "POST", f"/v1/models/{model}:predict", body, headers


@pytest.fixture(scope="module")
def client(reference_server: ServerProcess) -> Any:
    with httpx.Client(base_url=reference_server.url, timeout=30) as http:
        yield http


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_any_request_gets_a_json_answer_below_500(
    client: httpx.Client, request: tuple[str, str, bytes, dict[str, str]]
) -> None:
    method, path, body, headers = request
    try:
        reply = client.request(method, path, content=body or None, headers=headers)
    except httpx.InvalidURL:
        return  # the client refused to send it; nothing reached the server
    event(f"HTTP {reply.status_code}")
    assert reply.status_code < 500, (path, body[:200], reply.text)
    if reply.status_code >= 400 and reply.status_code not in (503,):
        payload = reply.json()
        assert isinstance(payload["error"], str)
        assert "Traceback" not in payload["error"]


def test_server_still_answers_after_fuzzing(client: httpx.Client) -> None:
    reply = client.post("/v1/models/half_plus_two:predict", json={"instances": [1.0]})
    assert reply.json() == {"predictions": [2.5]}
