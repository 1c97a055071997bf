"""Open Inference Protocol (KServe v2) over REST, with the binary tensor data extension."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from ..core import limits
from ..core.errors import ServingError, invalid, not_found
from ..core.inference import InferenceService
from ..core.versions import parse_version
from ..http.server import Request, Response, json_error
from . import json_body, v2_codec, v2_metadata

HEADER_LENGTH = "inference-header-content-length"
# Member names whose numeric arrays are tensor data, parsed straight to numpy.
_TENSOR_KEYS = (b"data",)
_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<verb>/ready|/infer)?/?$"
)


def _json(status: int, payload: Any) -> Response:
    return Response(status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))


class V2Rest:
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        try:
            # Model paths (infer, the hot one) first; the fixed server paths never match it.
            match = _PATH.match(path)
            if match is not None:
                return await self._model(request, match)
            if path == "/v2":
                return _json(200, v2_metadata.server_metadata())
            if path == "/v2/health/live":
                return _json(200, {"live": True})
            if path == "/v2/health/ready":
                ready = self.service.models.ready
                return _json(200 if ready else 503, {"ready": ready})
            raise not_found(f"no such endpoint: {request.path}")
        except ServingError as exc:
            return json_error(exc.http_status, exc.message)

    async def _model(self, request: Request, match: re.Match[str]) -> Response:
        name, verb = match["name"], match["verb"]
        version = parse_version(match["version"])
        if verb == "/infer":
            if request.method != "POST":
                raise invalid("use POST for infer")
            return await self._infer(request, name, version)
        if request.method != "GET":
            raise invalid(f"use GET for {request.path}")
        if verb == "/ready":
            ready = self.service.models.model_ready(name, version)
            if not ready and not self.service.models.knows(name):
                raise not_found(f"model {name!r} not found")
            return _json(200 if ready else 503, {"name": name, "ready": ready})
        resolved = self.service.resolve(name, version)
        signature = self.service.signature(resolved, None)
        versions = self.service.models.available_versions(name)
        return _json(200, v2_metadata.model_metadata(name, versions, signature))

    async def _infer(self, request: Request, name: str, version: int | None) -> Response:
        started = time.perf_counter()
        ok = False
        try:
            raw, binary = _split_body(request)
            try:
                # A big JSON part is parsed off the event loop (json_body.OFF_LOOP_BYTES); a
                # small one here, without the hand-over.
                parsed = (
                    await json_body.parse_off_loop(raw, _TENSOR_KEYS)
                    if json_body.off_loop(raw)
                    else json_body.parse(raw, _TENSOR_KEYS)
                )
            except orjson.JSONDecodeError as exc:
                raise invalid(f"JSON parse error: {exc.msg} at offset {exc.pos}") from None
            body = parsed.value
            if type(body) is not dict:
                raise invalid("request body must be a JSON object")
            resolved = self.service.resolve(name, version)
            params = _parameters(body.get("parameters"), "the request")
            signature = self.service.signature(resolved, params.get("signature_name"))
            inputs = _inputs(body, binary, parsed.nulls)
            if "outputs" in body or params:
                wanted, binary_out = _requested_outputs(body, params)
            else:
                wanted, binary_out = [], False
            outputs = await self.service.run(resolved, signature, inputs, wanted or None)
            response = self._respond(body, resolved.name, resolved.version, outputs, binary_out)
            ok = True
            return response
        finally:
            self.service.record(name, "infer", "REST", started, ok)

    @staticmethod
    def _respond(
        body: dict[str, Any],
        name: str,
        version: int,
        outputs: dict[str, Any],
        binary_out: set[str] | bool,
    ) -> Response:
        result: dict[str, Any] = {"model_name": name, "model_version": str(version)}
        if "id" in body:
            result["id"] = body["id"]
        chunks: list[bytes] = []
        entries = []
        for key, array in outputs.items():
            entry: dict[str, Any] = {
                "name": key,
                "datatype": v2_codec.datatype(array),
                "shape": array.shape,  # orjson writes a tuple as an array
            }
            if binary_out is True or (binary_out and key in binary_out):
                raw = v2_codec.to_raw(array)
                entry["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                entry["data"] = v2_codec.to_json_data(array)
            entries.append(entry)
        result["outputs"] = entries
        head = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        if not chunks:
            return Response(200, head)
        return Response(
            200,
            head + b"".join(chunks),
            "application/octet-stream",
            ((HEADER_LENGTH, str(len(head))),),
        )


def _split_body(request: Request) -> tuple[bytes, bytes | memoryview]:
    """The JSON part of the body, and the binary tensor data after it."""
    header = request.headers.get(HEADER_LENGTH)
    raw = request.body
    if header is None:
        return raw, b""
    # ASCII digits only: int() reads Arabic-Indic digits and raises on superscripts. And
    # few of them: int() raises past 4,300 digits.
    if not (header.isascii() and header.isdigit()) or len(header) > 19 or int(header) > len(raw):
        raise invalid(f"bad {HEADER_LENGTH} header: {header[:40]!r}")
    # The tensors are read in place (np.frombuffer): only the small JSON part is copied.
    view = memoryview(raw)
    return bytes(view[: int(header)]), view[int(header) :]


def _inputs(body: dict[str, Any], binary: bytes | memoryview, nulls: bool) -> dict[str, Any]:
    items = body.get("inputs")
    common = None if binary else v2_codec.decode_common(items)
    return common if common is not None else decode_inputs(items, binary, nulls)


def decode_inputs(items: Any, binary: bytes | memoryview, nulls: bool) -> dict[str, Any]:
    """The request's inputs, any form the protocol allows, or INVALID_ARGUMENT naming the fault.

    Exact type checks: orjson makes only dict, list and str.
    """
    if type(items) is not list or not items:
        raise invalid("'inputs' must be a non-empty list")
    inputs: dict[str, Any] = {}
    budget = limits.RequestBudget()
    offset = 0
    for item in items:
        key = item.get("name") if type(item) is dict else None
        if type(key) is not str:
            raise invalid("each input needs a 'name'")
        if key in inputs:
            raise invalid(f"input {key!r} given twice")
        datatype = v2_codec.v2_type(key, item.get("datatype"))
        shape, nbytes = v2_codec.declared_shape(key, item.get("shape"), datatype)
        budget.add(key, nbytes)
        raw_params = item.get("parameters")
        size = (
            None
            if raw_params is None
            else _int_param(
                _parameters(raw_params, f"input {key!r}"), "binary_data_size", f"input {key!r}"
            )
        )
        if size is not None:
            if offset + size > len(binary):
                raise invalid(f"input {key!r}: binary_data_size {size} exceeds the body")
            inputs[key] = v2_codec.from_raw(key, datatype, shape, binary[offset : offset + size])
            offset += size
        elif "data" in item:
            inputs[key] = v2_codec.from_json(key, datatype, shape, item["data"], nulls)
        else:
            raise invalid(f"input {key!r} has neither 'data' nor binary_data_size")
    if offset != len(binary):
        raise invalid("binary data left over after the inputs")
    return inputs


def _requested_outputs(body: dict[str, Any], params: dict[str, Any]) -> tuple[list[str], Any]:
    default_binary = _bool_param(params, "binary_data_output", "the request") or False
    items = body.get("outputs")
    if items is None:
        return [], default_binary
    if not isinstance(items, list):
        raise invalid("'outputs' must be a list")
    names, binary = [], set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise invalid("each requested output needs a 'name'")
        key = item["name"]
        names.append(key)
        out_params = _parameters(item.get("parameters"), f"output {key!r}")
        if "classification" in out_params:
            # Triton's top-k extension: not served here, and never silently ignored.
            raise invalid(f"output {key!r}: parameter 'classification' is not supported")
        wanted = _bool_param(out_params, "binary_data", f"output {key!r}")
        if default_binary if wanted is None else wanted:
            binary.add(key)
    return names, binary


# Parameters are typed by the protocol: a JSON true is not the integer 1 (Python's bool is an
# int), and the string "false" is not a true boolean. A value of the wrong type is refused.


def _parameters(value: Any, owner: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{owner}: 'parameters' must be an object")
    return value


def _int_param(params: dict[str, Any], name: str, owner: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(
            f"{owner}: parameter {name!r} must be a non-negative integer, not {_show(value)}"
        )
    return value


def _bool_param(params: dict[str, Any], name: str, owner: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{owner}: parameter {name!r} must be true or false, not {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
