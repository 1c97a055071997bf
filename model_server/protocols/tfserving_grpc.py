"""TF Serving's gRPC API: tensorflow.serving.PredictionService and ModelService.

Method names are the RPC names, as gRPC servicers require.
"""
# ruff: noqa: N802

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from ..config_files import ConfigError, models_from_proto
from ..core import limits
from ..core.errors import Code, ServingError, invalid
from ..core.inference import InferenceService
from ..core.types import CLASSIFY_METHOD, REGRESS_METHOD, Resolved
from ..grpcwire.calls import CallContext, Registry
from . import examples
from .tensor_proto import declared_bytes, from_numpy, to_numpy

T = TypeVar("T")
_STATES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


async def _abort(context: CallContext, exc: ServingError) -> None:
    await context.abort(grpc.StatusCode[exc.code.name], exc.message)


class _Base:
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def _call(
        self,
        context: CallContext,
        model: str,
        api: str,
        work: Callable[[], Awaitable[T]],
    ) -> T:
        started = time.perf_counter()
        ok = False
        try:
            result = await work()
            ok = True
            return result
        except ServingError as exc:
            await _abort(context, exc)
            raise  # abort raises; this keeps the type checker sure we never fall through
        finally:
            self.service.record(model, api, "GRPC", started, ok)

    def _resolve(self, spec: Any) -> Resolved:
        if not spec.name:
            raise invalid("model_spec.name is required")
        which = spec.WhichOneof("version_choice")
        version = spec.version.value if which == "version" else None
        label = spec.version_label if which == "version_label" else None
        return self.service.resolve(spec.name, version, label)


def _spec(out: Any, resolved: Resolved, signature: str) -> None:
    out.name = resolved.name
    out.version.value = resolved.version
    out.signature_name = signature


def _serialized_input(request_input: Any) -> np.ndarray:
    which = request_input.WhichOneof("kind")
    if which == "example_list":
        items, context = request_input.example_list.examples, b""
    elif which == "example_list_with_context":
        items = request_input.example_list_with_context.examples
        context = request_input.example_list_with_context.context.SerializeToString()
    else:
        raise invalid("Input is empty")
    if not items:
        raise invalid("Input is empty")
    return examples.serialized_examples([e.SerializeToString() for e in items], context)


async def _decode_inputs(protos: Any) -> dict[str, np.ndarray]:
    """The request's tensors, each checked against the limits before any is allocated.

    A fill from one value or a copy of a big repeated field runs on a worker thread, so the
    event loop keeps serving other requests meanwhile.
    """
    budget = limits.RequestBudget()
    for key, proto in protos.items():
        budget.add(key, declared_bytes(proto, key))

    def decode() -> dict[str, np.ndarray]:
        return {key: to_numpy(proto, key) for key, proto in protos.items()}

    if budget.used > limits.OFF_LOOP_BYTES:
        return await asyncio.to_thread(decode)
    return decode()


class PredictionServicer(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    async def Predict(self, request: Any, context: CallContext) -> Any:
        async def work() -> Any:
            resolved = self._resolve(request.model_spec)
            signature = self.service.signature(resolved, request.model_spec.signature_name)
            inputs = await _decode_inputs(request.inputs)
            outputs = await self.service.run(
                resolved, signature, inputs, list(request.output_filter) or None
            )
            response = predict_pb2.PredictResponse()
            _spec(response.model_spec, resolved, signature.name)
            for key, value in outputs.items():
                from_numpy(value, response.outputs[key])
            return response

        return await self._call(context, request.model_spec.name, "predict", work)

    async def _examples(self, request: Any, method: str) -> tuple[Resolved, str, dict[str, Any]]:
        resolved = self._resolve(request.model_spec)
        signature = self.service.signature(resolved, request.model_spec.signature_name)
        key = examples.string_input_key(signature, method)
        outputs = await self.service.run(
            resolved, signature, {key: _serialized_input(request.input)}
        )
        return resolved, signature.name, outputs

    async def _classify(self, request: Any, result: Any) -> Resolved:
        resolved, _, outputs = await self._examples(request, CLASSIFY_METHOD)
        count = _example_count(request.input)
        for row in examples.classifications(outputs, count):
            classes = result.classifications.add()
            for label, score in row:
                classes.classes.add(label=label, score=score)
        return resolved

    async def _regress(self, request: Any, result: Any) -> Resolved:
        resolved, _, outputs = await self._examples(request, REGRESS_METHOD)
        for value in examples.regressions(outputs, _example_count(request.input)):
            result.regressions.add(value=value)
        return resolved

    async def Classify(self, request: Any, context: CallContext) -> Any:
        async def work() -> Any:
            response = classification_pb2.ClassificationResponse()
            resolved = await self._classify(request, response.result)
            _spec(response.model_spec, resolved, _sig_name(request))
            return response

        return await self._call(context, request.model_spec.name, "classify", work)

    async def Regress(self, request: Any, context: CallContext) -> Any:
        async def work() -> Any:
            response = regression_pb2.RegressionResponse()
            resolved = await self._regress(request, response.result)
            _spec(response.model_spec, resolved, _sig_name(request))
            return response

        return await self._call(context, request.model_spec.name, "regress", work)

    async def MultiInference(self, request: Any, context: CallContext) -> Any:
        async def work() -> Any:
            if not request.tasks:
                raise invalid("MultiInferenceRequest has no tasks")
            response = inference_pb2.MultiInferenceResponse()
            for task in request.tasks:
                sub = _TaskRequest(task.model_spec, request.input)
                result = response.results.add()
                if task.method_name == CLASSIFY_METHOD:
                    resolved = await self._classify(sub, result.classification_result)
                elif task.method_name == REGRESS_METHOD:
                    resolved = await self._regress(sub, result.regression_result)
                else:
                    raise ServingError(
                        Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
                    )
                _spec(result.model_spec, resolved, _sig_name(sub))
            return response

        model = request.tasks[0].model_spec.name if request.tasks else ""
        return await self._call(context, model, "multi_inference", work)

    async def GetModelMetadata(self, request: Any, context: CallContext) -> Any:
        async def work() -> Any:
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise invalid("Metadata field(s) must be exactly ['signature_def']")
            resolved = self._resolve(request.model_spec)
            sig_map = get_model_metadata_pb2.SignatureDefMap.FromString(
                resolved.servable.signature_def_map()
            )
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _spec(response.model_spec, resolved, "")
            response.metadata["signature_def"].Pack(sig_map)
            return response

        return await self._call(context, request.model_spec.name, "metadata", work)


class _TaskRequest:
    """One MultiInference task seen as a Classify/Regress request."""

    def __init__(self, model_spec: Any, request_input: Any) -> None:
        self.model_spec = model_spec
        self.input = request_input


def _sig_name(request: Any) -> str:
    return str(request.model_spec.signature_name or "serving_default")


def _example_count(request_input: Any) -> int:
    which = request_input.WhichOneof("kind")
    return len(getattr(request_input, str(which)).examples)


class ModelServicer(_Base, model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, service: InferenceService, reload_allowed: bool = True) -> None:
        super().__init__(service)
        self.reload_allowed = reload_allowed

    async def GetModelStatus(self, request: Any, context: CallContext) -> Any:
        try:
            spec = request.model_spec
            which = spec.WhichOneof("version_choice")
            version = spec.version.value if which == "version" else None
            label = spec.version_label if which == "version_label" else None
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in self.service.models.statuses(spec.name, version, label):
                entry = response.model_version_status.add()
                entry.version = status.version
                entry.state = _STATES[status.state]
                entry.status.error_code = int(status.error_code)
                entry.status.error_message = status.error_message
            return response
        except ServingError as exc:
            await _abort(context, exc)

    async def HandleReloadConfigRequest(self, request: Any, context: CallContext) -> Any:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if not self.reload_allowed:
                # It would reach one worker process only; the others would keep the old models.
                raise ServingError(
                    Code.FAILED_PRECONDITION,
                    "HandleReloadConfigRequest is not supported with --workers > 1; "
                    "change --model_config_file instead (polled every "
                    "--model_config_file_poll_wait_seconds)",
                )
            if request.config.WhichOneof("config") != "model_config_list":
                raise invalid("only model_config_list is supported")
            models = models_from_proto(request.config.model_config_list, "ReloadConfigRequest")
            # Blocks until loaded, as TF Serving's reload does; off the event loop.
            await asyncio.get_running_loop().run_in_executor(
                None, self.service.models.reload, models
            )
        except ConfigError as exc:
            response.status.error_code = int(Code.INVALID_ARGUMENT)
            response.status.error_message = str(exc)
        except ServingError as exc:
            response.status.error_code = int(exc.code)
            response.status.error_message = exc.message
        return response


def add_to_server(server: Registry, service: InferenceService, reload_allowed: bool = True) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(service, reload_allowed), server
    )
