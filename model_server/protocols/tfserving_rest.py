"""TF Serving's REST API (`/v1/models/...`): status, metadata, predict, classify, regress."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import orjson
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from ..core.errors import ServingError, invalid
from ..core.inference import InferenceService
from ..core.types import CLASSIFY_METHOD, REGRESS_METHOD, Resolved, Signature, Tensors
from ..core.versions import parse_version
from ..http.server import Request, Response, json_error
from ..protocols import examples, json_body
from ..protocols.json_tensors import is_b64, to_array, to_json

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _ok(payload: Any) -> Response:
    return Response(200, orjson.dumps(payload, option=_JSON_OPTS))


class TfServingRest:
    def __init__(self, service: InferenceService, max_b64_bytes: int | None = None) -> None:
        self.service = service
        self.max_b64 = max_b64_bytes

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        match = _PATH.match(request.path)
        if match is None:
            return json_error(404, f"Malformed request: {request.method} {request.path}")
        name, verb = match["name"], match["verb"]
        ok = False
        try:
            response = await self._route(request, match)
            ok = True
            return response
        except ServingError as exc:
            return json_error(exc.http_status, exc.message)
        finally:
            if verb is not None:
                self.service.record(name, verb, "REST", started, ok)

    async def _route(self, request: Request, match: re.Match[str]) -> Response:
        name, verb, label = match["name"], match["verb"], match["label"]
        version = parse_version(match["version"])
        if verb is None:
            if request.method != "GET":
                raise invalid(f"{request.method} is not supported here; use GET")
            if match["metadata"]:
                return self._metadata(name, version, label)
            return self._status(name, version, label)
        if request.method != "POST":
            raise invalid(f"{request.method} is not supported for :{verb}; use POST")
        if verb not in ("predict", "classify", "regress"):
            raise invalid(f"Unsupported verb {verb!r}: use predict, classify or regress")
        # Only predict takes tensors: classify/regress features stay lists for tf.Example.
        parsed = await _parse_body(request.body, tensors=verb == "predict")
        resolved = self.service.resolve(name, version, label)
        if verb == "predict":
            return await self._predict(resolved, parsed.value, parsed.nulls)
        return await self._classify_or_regress(resolved, parsed.value, verb)

    # -- GET ----------------------------------------------------------------------------------

    def _status(self, name: str, version: int | None, label: str | None) -> Response:
        statuses = self.service.models.statuses(name, version, label)
        return _ok(
            {
                "model_version_status": [
                    {
                        "version": str(s.version),
                        "state": s.state,
                        "status": {
                            "error_code": s.error_code.name,
                            "error_message": s.error_message,
                        },
                    }
                    for s in statuses
                ]
            }
        )

    def _metadata(self, name: str, version: int | None, label: str | None) -> Response:
        resolved = self.service.resolve(name, version, label)
        sig_map = get_model_metadata_pb2.SignatureDefMap.FromString(
            resolved.servable.signature_def_map()
        )
        metadata = json_format.MessageToDict(
            sig_map,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        return _ok(
            {
                "model_spec": {
                    "name": resolved.name,
                    "signature_name": "",
                    "version": str(resolved.version),
                },
                "metadata": {"signature_def": metadata},
            }
        )

    # -- POST ---------------------------------------------------------------------------------

    async def _predict(self, resolved: Resolved, body: dict[str, Any], nulls: bool) -> Response:
        signature = self.service.signature(resolved, _signature_name(body))
        has_rows, has_cols = "instances" in body, "inputs" in body
        if has_rows == has_cols:
            raise invalid(
                "Missing 'inputs' or 'instances' keys"
                if not has_rows
                else "Both 'inputs' and 'instances' are present; use one"
            )
        if has_rows:
            inputs = _rows_to_tensors(signature, body["instances"], self.max_b64, nulls)
        else:
            inputs = _columns_to_tensors(signature, body["inputs"], self.max_b64, nulls)
        outputs = await self.service.run(resolved, signature, inputs)
        if has_rows:
            return _ok({"predictions": _tensors_to_rows(outputs)})
        if len(outputs) == 1:
            key, value = next(iter(outputs.items()))
            return _ok({"outputs": to_json(key, value)})
        return _ok({"outputs": {key: to_json(key, value) for key, value in outputs.items()}})

    async def _classify_or_regress(
        self, resolved: Resolved, body: dict[str, Any], verb: str
    ) -> Response:
        signature = self.service.signature(resolved, _signature_name(body))
        method = CLASSIFY_METHOD if verb == "classify" else REGRESS_METHOD
        key = examples.string_input_key(signature, method)
        items = body.get("examples")
        if not isinstance(items, list) or not items:
            raise invalid("'examples' must be a non-empty list of objects")
        context = body.get("context")
        context_bytes = examples.example_from_json(context) if context is not None else b""
        serialized = examples.serialized_examples(
            [examples.example_from_json(item) for item in items], context_bytes
        )
        outputs = await self.service.run(resolved, signature, {key: serialized})
        if verb == "classify":
            classes = examples.classifications(outputs, len(items))
            return _ok({"results": [[[label, score] for label, score in row] for row in classes]})
        return _ok({"results": examples.regressions(outputs, len(items))})


async def _parse_body(body: bytes, tensors: bool) -> json_body.Parsed:
    """The JSON object; with `tensors`, its big numeric arrays as numpy arrays already.

    A big body is parsed off the event loop (json_body.OFF_LOOP_BYTES).
    """
    try:
        if tensors:
            parsed = await json_body.parse_off_loop(body)
        else:
            parsed = await json_body.loads_off_loop(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"JSON Parse error: {exc.msg} at offset {exc.pos}") from None
    if not isinstance(parsed.value, dict):
        raise invalid("JSON Value is not an object")
    return parsed


def _signature_name(body: dict[str, Any]) -> str | None:
    name = body.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise invalid("'signature_name' must be a string")
    return name


def _rows_to_tensors(
    signature: Signature, instances: Any, max_b64: int | None, nulls: bool = True
) -> Tensors:
    # An ndarray: numbers only, parsed by json_body already.
    if not isinstance(instances, list | np.ndarray) or len(instances) == 0:
        raise invalid("'instances' must be a non-empty list")
    named = isinstance(instances[0], dict) and not is_b64(instances[0])
    if named:
        keys = set(instances[0])
        for row in instances:
            if not isinstance(row, dict) or set(row) != keys:
                raise invalid("every instance must be an object with the same input names")
        return {
            key: to_array(
                key, [row[key] for row in instances], _input(signature, key).dtype, max_b64, nulls
            )
            for key in keys
        }
    key = _single_input(signature)
    return {key: to_array(key, instances, signature.inputs[key].dtype, max_b64, nulls)}


def _columns_to_tensors(
    signature: Signature, inputs: Any, max_b64: int | None, nulls: bool = True
) -> Tensors:
    if isinstance(inputs, dict) and not is_b64(inputs):
        return {
            key: to_array(key, value, _input(signature, key).dtype, max_b64, nulls)
            for key, value in inputs.items()
        }
    key = _single_input(signature)
    return {key: to_array(key, inputs, signature.inputs[key].dtype, max_b64, nulls)}


def _input(signature: Signature, key: str) -> Any:
    spec = signature.inputs.get(key)
    if spec is None:
        raise invalid(
            f"input {key!r} is not in signature {signature.name!r}: {sorted(signature.inputs)}"
        )
    return spec


def _single_input(signature: Signature) -> str:
    if len(signature.inputs) != 1:
        raise invalid(
            f"signature {signature.name!r} has {len(signature.inputs)} inputs; "
            "send objects keyed by input name"
        )
    return next(iter(signature.inputs))


def _tensors_to_rows(outputs: Tensors) -> Any:
    if len(outputs) == 1:
        key, value = next(iter(outputs.items()))
        return to_json(key, value)
    sizes = {value.shape[0] if value.ndim else -1 for value in outputs.values()}
    if len(sizes) != 1 or -1 in sizes:
        raise invalid("outputs differ in batch size; use the columnar 'inputs' format")
    count = sizes.pop()
    columns = {key: to_json(key, value) for key, value in outputs.items()}
    return [{key: column[i] for key, column in columns.items()} for i in range(count)]
