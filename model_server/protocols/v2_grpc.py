"""Open Inference Protocol (KServe v2) gRPC: inference.GRPCInferenceService."""
# ruff: noqa: N802  (method names are the RPC names)

from __future__ import annotations

import time
from typing import Any

import grpc
import numpy as np

from ..core import limits
from ..core.errors import ServingError, invalid
from ..core.inference import InferenceService
from ..core.versions import parse_version
from ..grpcwire.calls import CallContext, Registry
from ..proto import grpc_predict_v2_pb2 as pb
from ..proto import grpc_predict_v2_pb2_grpc as pb_grpc
from . import v2_codec, v2_metadata

# InferTensorContents field holding each datatype when raw contents are not used.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "INT64": "int64_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def ServerLive(self, request: Any, context: CallContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: CallContext) -> Any:
        return pb.ServerReadyResponse(ready=self.service.models.ready)

    async def ModelReady(self, request: Any, context: CallContext) -> Any:
        try:
            version = parse_version(request.version)
        except ServingError as exc:
            await context.abort(grpc.StatusCode[exc.code.name], exc.message)
        return pb.ModelReadyResponse(ready=self.service.models.model_ready(request.name, version))

    async def ServerMetadata(self, request: Any, context: CallContext) -> Any:
        return pb.ServerMetadataResponse(**v2_metadata.server_metadata())

    async def ModelMetadata(self, request: Any, context: CallContext) -> Any:
        try:
            resolved = self.service.resolve(request.name, parse_version(request.version))
            signature = self.service.signature(resolved, None)
        except ServingError as exc:
            await context.abort(grpc.StatusCode[exc.code.name], exc.message)
        meta = v2_metadata.model_metadata(
            request.name, self.service.models.available_versions(request.name), signature
        )
        response = pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"]
        )
        for field in ("inputs", "outputs"):
            for tensor in meta[field]:
                getattr(response, field).add(**tensor)
        return response

    async def ModelInfer(self, request: Any, context: CallContext) -> Any:
        started = time.perf_counter()
        ok = False
        try:
            resolved = self.service.resolve(
                request.model_name, parse_version(request.model_version)
            )
            signature = self.service.signature(resolved, _signature_name(request))
            inputs = _inputs(request)
            wanted = [o.name for o in request.outputs]
            outputs = await self.service.run(resolved, signature, inputs, wanted or None)
            response = pb.ModelInferResponse(
                model_name=resolved.name, model_version=str(resolved.version), id=request.id
            )
            for key, array in outputs.items():
                response.outputs.add(
                    name=key, datatype=v2_codec.datatype(array), shape=list(array.shape)
                )
                response.raw_output_contents.append(v2_codec.to_raw(array))
            ok = True
            return response
        except ServingError as exc:
            await context.abort(grpc.StatusCode[exc.code.name], exc.message)
        finally:
            self.service.record(request.model_name, "infer", "GRPC", started, ok)


def _signature_name(request: Any) -> str | None:
    """The signature_name parameter: a string_param, never another type read as one."""
    if "signature_name" not in request.parameters:
        return None
    param = request.parameters["signature_name"]
    if param.WhichOneof("parameter_choice") != "string_param":
        raise invalid("the request: parameter 'signature_name' must be a string_param")
    return str(param.string_param)


def _inputs(request: Any) -> dict[str, np.ndarray]:
    if not request.inputs:
        raise invalid("request has no inputs")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise invalid(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs: dict[str, np.ndarray] = {}
    budget = limits.RequestBudget()
    for index, tensor in enumerate(request.inputs):
        key = tensor.name
        if key in inputs:
            raise invalid(f"input {key!r} given twice")
        datatype = v2_codec.v2_type(key, tensor.datatype)
        shape, nbytes = v2_codec.declared_shape(key, list(tensor.shape), datatype)
        budget.add(key, nbytes)
        if raw:
            inputs[key] = v2_codec.from_raw(key, datatype, shape, raw[index])
        else:
            field = _CONTENTS.get(tensor.datatype)
            if field is None:
                raise invalid(f"input {key!r}: {tensor.datatype} needs raw_input_contents")
            values = list(getattr(tensor.contents, field))
            inputs[key] = v2_codec.from_json(key, datatype, shape, values, typed=True)
    return inputs


def add_to_server(server: Registry, service: InferenceService) -> None:
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceServicer(service), server
    )
