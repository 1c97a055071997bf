"""JSON bodies with numeric arrays parsed in C: the same values orjson gives, as numpy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from modelship_server.protocols import json_body, json_tensors

pytestmark = pytest.mark.unit

N = json_body.MIN_NUMBERS


def test_the_c_extension_is_built() -> None:
    # Without it the server still works (orjson alone), but this suite would not test it.
    assert json_body.accelerated(), "the C extension was not built: install gcc, run make setup"


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types (int vs float) and the same sign of zero; an array in `a`
    is what numpy makes of the list in `b` (ints become floats when floats are among them)."""
    if isinstance(a, np.ndarray):
        reference = np.asarray(b)
        return (
            a.dtype == reference.dtype
            and a.shape == reference.shape
            and a.tobytes() == reference.tobytes()
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def arrays_in(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return 1
    if isinstance(value, dict):
        return sum(arrays_in(item) for item in value.values())
    if isinstance(value, list):
        return sum(arrays_in(item) for item in value)
    return 0


def outcome(parse: Any, body: bytes) -> Any:
    try:
        return parse(body)
    except orjson.JSONDecodeError as exc:
        return ("error", str(exc))


# -- number text in every form JSON allows, and some it does not -------------------------------

common_texts = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: f"{f:.9g}"),
    st.integers(0, 30).flatmap(
        lambda places: st.decimals(-(10**20), 10**20, places=places).map(str)
    ),
    st.tuples(
        st.integers(-(10**25), 10**25),
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 30),
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}{t[3]}"),
    st.sampled_from(["-0", "-0.0", "0.0", "0e0", "1e-400", "0.000001", "123.456e-2"]),
)
# Numbers the C parser leaves to orjson (past int64 or double) or that are not JSON at all.
exotic_texts = st.one_of(
    st.integers(2**63, 2**65).map(str),
    st.integers(-(2**65), -(2**63) - 1).map(str),
    st.sampled_from(["1e400", "-1E+400", "123456789012345678901234567890e300"]),
)
bad_texts = st.sampled_from(["01", "1.", ".5", "+1", "1e", "--1", "NaN", "Infinity", "0x10", "1 2"])
spaces = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@st.composite
def numeric_arrays(draw: st.DrawFn, broken: bool = False) -> str:
    """A nested array of numbers as JSON text: regular, or (with `broken`) possibly not."""
    shape = draw(st.sampled_from([(N,), (N + 7,), (4, 10), (2, 4, 5), (1, 40), (40, 1), (3,)]))
    count = math.prod(shape)
    numbers = draw(st.lists(common_texts, min_size=count, max_size=count))
    if draw(st.integers(0, 4)) == 0:
        numbers[draw(st.integers(0, count - 1))] = draw(exotic_texts)
    kind = ""
    if broken:
        kind = draw(st.sampled_from(["bad number", "ragged", "string", "empty", "comma"]))
        event(kind)
        at = draw(st.integers(0, count - 1))
        if kind == "bad number":
            numbers[at] = draw(bad_texts)
        elif kind == "string":
            numbers[at] = '"x"'
        elif kind == "empty":
            numbers[at] = "[]"
        elif kind == "comma":
            numbers[at] += ","

    def build(dims: tuple[int, ...], offset: int) -> str:
        if len(dims) == 1:
            items = numbers[offset : offset + dims[0]]
            if broken and kind == "ragged" and offset == 0 and len(items) > 1:
                items = items[:-1]
        else:
            step = math.prod(dims[1:])
            items = [build(dims[1:], offset + i * step) for i in range(dims[0])]
        sep = draw(spaces)
        return "[" + sep + ("," + sep).join(items) + sep + "]"

    return build(shape, 0)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """TF Serving / v2 shaped bodies with arrays where tensors go, plus decoys."""

    def array() -> str:
        return draw(numeric_arrays(broken=draw(st.integers(0, 4)) == 0))

    key = draw(st.sampled_from(["instances", "inputs", "data", "x", 'we\\"ird[', "d\\u0061ta"]))
    members = [f'"{key}":{draw(spaces)}{array()}']
    if draw(st.booleans()):  # named row format: arrays inside objects inside an array
        rows = ",".join(
            f'{{"a": {array()}, "b": "s[1,2]"}}' for _ in range(draw(st.integers(1, 3)))
        )
        members.append(f'"rows": [{rows}]')
    if draw(st.booleans()):  # an array in an array is left to orjson
        members.append(f'"nested": [{array()}, null]')
    if draw(st.booleans()):
        members.append('"text": "\\" [1, 2, 3] \\\\"')
    if draw(st.integers(0, 4)) == 0:  # a placeholder could be taken for it: no extraction
        members.append('"nul": "a\\u0000b"')
    draw(st.randoms()).shuffle(members)
    return ("{" + ", ".join(members) + "}").encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=documents())
def test_parse_gives_what_orjson_gives(body: bytes) -> None:
    expected = outcome(orjson.loads, body)
    got = outcome(lambda b: json_body.parse(b).value, body)
    # The same scan with the GIL released (as on a worker thread, for big bodies).
    released = outcome(lambda b: json_body.parse(b, release=True).value, body)
    assert same(released, expected), body
    if isinstance(expected, tuple):
        event("invalid JSON")
    else:
        event(f"parsed, numpy arrays: {min(arrays_in(json_body.parse(body).value), 2)}")
    assert same(got, expected), body


def test_regular_numeric_arrays_become_numpy_and_others_do_not() -> None:
    floats = ", ".join(f"{i / 8}" for i in range(N))
    ints = ", ".join(str(i - 5) for i in range(N))
    body = (
        f'{{"instances": [[{floats}], [{floats}]], "ints": [{ints}], "small": [1, 2],'
        f' "ragged": [[{floats}], [1.5]], "text": "[{ints}]"}}'
    ).encode()
    value = json_body.parse(body).value
    assert value["instances"].dtype == np.float64
    assert value["instances"].shape == (2, N)
    assert value["ints"].dtype == np.int64
    assert value["ints"][0] == -5
    assert value["small"] == [1, 2]  # under MIN_NUMBERS: orjson's list
    assert isinstance(value["ragged"], list)
    assert value["text"] == f"[{ints}]"
    assert value["instances"].flags.writeable


def test_keys_limit_which_arrays_are_taken() -> None:
    numbers = ", ".join(["0.5"] * N)
    body = f'{{"shape": [{numbers}], "data": [{numbers}]}}'.encode()
    value = json_body.parse(body, keys=(b"data",)).value
    assert isinstance(value["shape"], list)
    assert isinstance(value["data"], np.ndarray)


def test_nulls_are_reported_from_what_stays_json() -> None:
    numbers = ", ".join(["1.5"] * N)
    assert not json_body.parse(f'{{"x": [{numbers}]}}'.encode()).nulls
    assert json_body.parse(f'{{"x": [{numbers}], "y": [1, null]}}'.encode()).nulls
    assert json_body.parse(b'{"y": [1, null]}').nulls


def test_errors_name_the_offset_in_the_original_body() -> None:
    numbers = ", ".join(["1.5"] * N)
    body = f'{{"x": [{numbers}], "y": [1,]}}'.encode()
    with pytest.raises(orjson.JSONDecodeError) as got:
        json_body.parse(body)
    with pytest.raises(orjson.JSONDecodeError) as expected:
        orjson.loads(body)
    assert got.value.pos == expected.value.pos
    assert str(got.value) == str(expected.value)


def test_deep_nesting_around_an_array_is_no_recursion_error() -> None:
    numbers = ", ".join(["1"] * N)
    body = ('{"a":[' * 400 + f'{{"x": [{numbers}]}}' + "]}" * 400).encode()
    value = json_body.parse(body).value
    for _ in range(400):
        value = value["a"][0]
    assert value["x"].tolist() == [1] * N


def test_float32_cast_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    doubles = np.concatenate([rng.normal(size=600) * 1e30, [1e39, -0.0, 3.4028235e38, 1e-46]])
    ints = np.array([0, -1, 2**24 + 1, 2**53 + 1, -(2**63), 2**63 - 1] * 100, dtype=np.int64)
    for source in (doubles.reshape(2, -1), ints):
        with np.errstate(over="ignore"):
            expected = source.astype(np.float32)
        got = json_body.as_dtype(source, np.dtype(np.float32))
        assert got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
    with np.errstate(over="ignore"):
        assert json_body.as_dtype(ints, np.dtype(np.float16)).dtype == np.float16


def test_json_tensors_take_parsed_arrays() -> None:
    parsed = json_body.parse(("[" + ", ".join(["2"] * N) + "]").join(['{"x": ', "}"]).encode())
    array = json_tensors.to_array("x", parsed.value["x"], "DT_FLOAT", nulls=parsed.nulls)
    assert array.dtype == np.float32
    assert array.tolist() == [2.0] * N


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """Valid bodies cut short or with bytes changed: the scanner must never read past the end."""
    body = bytearray(draw(documents()))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body) - 1))
        body[at] = draw(st.sampled_from(b'[]{},:"\\-.eE0 \x00\xff'))
    return bytes(body[: draw(st.integers(0, len(body)))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(mangled(), st.binary(max_size=200)))
def test_any_bytes_give_orjson_s_answer_or_its_error(body: bytes) -> None:
    expected = outcome(orjson.loads, body)
    assert same(outcome(lambda b: json_body.parse(b).value, body), expected)
    assert same(outcome(lambda b: json_body.parse(b, release=True).value, body), expected)
