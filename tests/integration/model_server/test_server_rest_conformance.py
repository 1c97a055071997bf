"""TF Serving REST conformance on TF Serving's own reference models, with httpx and curl."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from server_process import MAX_BODY, METRICS_PATH, ServerProcess, metric_value


def test_predict_row_format(rest: httpx.Client) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", json={"instances": [1.0, 2.0, 5.0]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [2.5, 3.0, 4.5]}


def test_predict_columnar_format(rest: httpx.Client) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", json={"inputs": [2.0, 3.0, 4.0]})
    assert reply.json() == {"outputs": [3.0, 3.5, 4.0]}


def test_predict_named_instances_and_signature(rest: httpx.Client) -> None:
    body = {"signature_name": "serving_default", "instances": [{"x": [1.0]}, {"x": [3.0]}]}
    reply = rest.post("/v1/models/half_plus_two:predict", json=body)
    assert reply.json() == {"predictions": [[2.5], [3.5]]}


# Bodies with arrays past json_body.MIN_NUMBERS take the C parser's path.
LARGE = [i * 0.25 - 7 for i in range(100)]
LARGE_INTS = list(range(-50, 50))


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ({"instances": LARGE}, "predictions", [x / 2 + 2 for x in LARGE]),
        ({"inputs": LARGE}, "outputs", [x / 2 + 2 for x in LARGE]),
        ({"inputs": {"x": LARGE}}, "outputs", [x / 2 + 2 for x in LARGE]),
        ({"instances": LARGE_INTS}, "predictions", [x / 2 + 2 for x in LARGE_INTS]),
    ],
)
def test_predict_large_arrays(
    rest: httpx.Client, body: dict[str, object], key: str, expected: list[float]
) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {key: expected}


@pytest.mark.parametrize(
    ("instances", "fragment"),
    [
        ([LARGE[:50], LARGE[:49]], "regular tensor"),
        ([LARGE[:50], LARGE[:50]], "shape"),  # x takes one dimension
    ],
)
def test_large_arrays_that_do_not_fit_are_400(
    rest: httpx.Client, instances: list[list[float]], fragment: str
) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", json={"instances": instances})
    assert reply.status_code == 400, reply.text
    assert fragment in reply.json()["error"]


def test_predict_other_signature(rest: httpx.Client) -> None:
    body = {"signature_name": "regress_x2_to_y3", "inputs": {"inputs": [[1.0], [2.0]]}}
    reply = rest.post("/v1/models/half_plus_two:predict", json=body)
    assert reply.json() == {"outputs": [[3.5], [4.0]]}  # y3 = 0.5 * x2 + 3


def test_regress(rest: httpx.Client) -> None:
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]}
    reply = rest.post("/v1/models/half_plus_two:regress", json=body)
    assert reply.json() == {"results": [3.0, 4.0]}


def test_classify(rest: httpx.Client) -> None:
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    reply = rest.post("/v1/models/half_plus_two:classify", json=body)
    assert reply.json() == {"results": [[["", 3.0]]]}


def test_regress_with_context(rest: httpx.Client) -> None:
    body = {
        "signature_name": "regress_x_to_y",
        "context": {"x": 10.0},
        "examples": [{}, {"x": 6.0}],
    }
    reply = rest.post("/v1/models/half_plus_two:regress", json=body)
    # The context fills what an example lacks; an example's own feature wins.
    assert reply.json() == {"results": [7.0, 5.0]}


def test_metadata_matches_tf_serving(rest: httpx.Client, testdata: Path) -> None:
    expected = json.loads((testdata / "half_plus_two_model_metadata.json").read_text())
    expected["model_spec"]["name"] = "half_plus_two"
    reply = rest.get("/v1/models/half_plus_two/metadata")
    assert reply.status_code == 200
    assert reply.json() == expected


def test_two_versions_metadata_matches(rest: httpx.Client, testdata: Path) -> None:
    expected = json.loads(
        (testdata / "saved_model_half_plus_two_2_versions_metadata.json").read_text()
    )
    expected["model_spec"]["name"] = "two_versions"
    reply = rest.get("/v1/models/two_versions/versions/123/metadata")
    assert reply.json() == expected


def test_model_status(rest: httpx.Client) -> None:
    reply = rest.get("/v1/models/two_versions")
    assert reply.json() == {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for version in ("123", "124")
        ]
    }
    one = rest.get("/v1/models/two_versions/versions/124").json()
    assert [s["version"] for s in one["model_version_status"]] == ["124"]


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1/models/two_versions", "124"),
        ("/v1/models/two_versions/versions/123", "123"),
        ("/v1/models/two_versions/versions/124", "124"),
        ("/v1/models/two_versions/labels/stable", "123"),
        ("/v1/models/two_versions/labels/canary", "124"),
    ],
)
def test_versions_and_labels(rest: httpx.Client, path: str, version: str) -> None:
    reply = rest.post(f"{path}:predict", json={"instances": [1.0]})
    assert reply.json() == {"predictions": [2.5]}
    meta = rest.get(f"{path}/metadata").json()
    assert meta["model_spec"]["version"] == version


def test_half_plus_three(rest: httpx.Client) -> None:
    reply = rest.post("/v1/models/half_plus_three:predict", json={"instances": [1.0, 2.0, 5.0]})
    assert reply.json() == {"predictions": [3.5, 4.0, 5.5]}


def test_curl_predict(reference_server: ServerProcess) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (hack/bootstrap.sh installs it)")
    out = subprocess.run(
        [
            curl,
            "-sS",
            "-d",
            '{"instances": [1.0, 2.0, 5.0]}',
            f"{reference_server.url}/v1/models/half_plus_two:predict",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == {"predictions": [2.5, 3.0, 4.5]}


@pytest.mark.parametrize(
    "case",
    [
        ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404, "nope"),
        ("POST", "/v1/models/half_plus_two/versions/9:predict", {"instances": [1.0]}, 404, "9"),
        ("POST", "/v1/models/two_versions/labels/gone:predict", {"instances": [1.0]}, 404, "gone"),
        ("POST", "/v1/models/half_plus_two/versions/x:predict", {"instances": [1]}, 400, "x"),
        ("POST", "/v1/models/half_plus_two:predict", {"instances": ["a"]}, 400, "DT_FLOAT"),
        ("POST", "/v1/models/half_plus_two:predict", {"instances": [[1.0], 2.0]}, 400, "regular"),
        ("POST", "/v1/models/half_plus_two:predict", {"instances": [[1.0, 2.0]]}, 400, "shape"),
        ("POST", "/v1/models/half_plus_two:predict", {"nothing": 1}, 400, "instances"),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            "nope",
        ),
        ("POST", "/v1/models/half_plus_two:explode", {"instances": [1.0]}, 400, "explode"),
        ("GET", "/v1/models/half_plus_two:predict", None, 400, "POST"),
        ("GET", "/v1/models/nope", None, 404, "nope"),
        ("GET", "/v1/models/nope/metadata", None, 404, "nope"),
        ("GET", "/v1/elsewhere", None, 404, "elsewhere"),
        (
            "POST",
            "/v1/models/half_plus_two:classify",
            {"examples": [{"x": 1.0}]},
            400,
            "classify",
        ),
    ],
)
def test_errors_are_json_with_tf_serving_codes(
    rest: httpx.Client, case: tuple[str, str, object, int, str]
) -> None:
    method, path, body, status, fragment = case
    reply = rest.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert fragment in error
    assert "Traceback" not in error


def test_malformed_json_is_400(rest: httpx.Client) -> None:
    reply = rest.post("/v1/models/half_plus_two:predict", content=b'{"instances": [1.0,')
    assert reply.status_code == 400
    assert "JSON" in reply.json()["error"]


def test_oversized_body_is_413_and_server_keeps_serving(rest: httpx.Client) -> None:
    big = base64.b64encode(b"x" * MAX_BODY).decode()
    reply = rest.post("/v1/models/half_plus_two:predict", json={"instances": [{"b64": big}]})
    assert reply.status_code == 413
    assert "exceeds" in reply.json()["error"]
    ok = rest.post("/v1/models/half_plus_two:predict", json={"instances": [1.0]})
    assert ok.json() == {"predictions": [2.5]}


def test_b64_to_a_float_input_is_400(rest: httpx.Client) -> None:
    reply = rest.post(
        "/v1/models/half_plus_two:predict",
        json={"instances": [{"b64": base64.b64encode(b"abc").decode()}]},
    )
    assert reply.status_code == 400


def test_b64_examples_reach_the_model(rest: httpx.Client) -> None:
    # A string feature the model does not read: the example still parses, x falls to default.
    body = {
        "signature_name": "regress_x_to_y",
        "examples": [{"x": 2.0, "tag": {"b64": base64.b64encode(b"\x00\xff").decode()}}],
    }
    reply = rest.post("/v1/models/half_plus_two:regress", json=body)
    assert reply.json() == {"results": [3.0]}


def test_metrics_at_the_configured_path_and_at_metrics(rest: httpx.Client) -> None:
    before = metric_value(
        rest.get(METRICS_PATH).text,
        ":tensorflow:serving:request_count",
        model_name="half_plus_three",
        status="OK",
    )
    for _ in range(3):
        rest.post("/v1/models/half_plus_three:predict", json={"instances": [1.0]})
    rest.post("/v1/models/half_plus_three:predict", json={"instances": ["bad"]})
    for path in (METRICS_PATH, "/metrics"):
        reply = rest.get(path)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        text = reply.text
        ok = metric_value(
            text, ":tensorflow:serving:request_count", model_name="half_plus_three", status="OK"
        )
        assert ok - before == 3
        assert (
            metric_value(
                text,
                ":tensorflow:serving:request_count",
                model_name="half_plus_three",
                status="ERROR",
            )
            >= 1
        )
        assert ":tensorflow:serving:request_latency_bucket{" in text
        assert 'modelship_server_inflight_requests{model_name="half_plus_three"} 0' in text
        assert "modelship_server_queue_depth" in text
    assert rest.get("/monitoring/prometheus/metrics").status_code == 404
