"""The one entry point every protocol adapter uses to find a model and run it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from ..core import validate
from ..core.batching import BatchScheduler
from ..core.config import BatchingConfig
from ..core.errors import Code, ServingError, invalid
from ..core.inline import InlineRunner, rows_of
from ..core.manager import ModelManager
from ..core.metrics import ServerMetrics
from ..core.model_service import ModelService
from ..core.types import DEFAULT_SIGNATURE, Resolved, Servable, Signature, Tensors


class InferenceService:
    def __init__(
        self,
        manager: ModelManager,
        metrics: ServerMetrics,
        batching: BatchingConfig | None = None,
        threads: int = 4,
    ) -> None:
        self._manager = manager
        # Readiness, statuses and reloads: the adapters' only way to the models besides running.
        self.models = ModelService(manager)
        self.metrics = metrics
        self._inline = InlineRunner()
        self.batcher = BatchScheduler(batching, metrics, self._inline) if batching else None
        manager.add_unload_listener(self._forget)
        # Without batching, each request runs on its own thread, off the event loop (but for a
        # lone quick one: see core/inline.py).
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="infer")
        self._inflight: dict[str, int] = {}
        self._inflight_total = 0
        metrics.inflight.set_callback(lambda: {(k,): float(v) for k, v in self._inflight.items()})
        metrics.model_versions.set_callback(self._available_versions)
        # A gauge without a sample reads as "no data" in Prometheus: an idle model must read 0.
        metrics.inflight.set_callback(self._zero_per_loaded_model)
        metrics.queue_depth.set_callback(self._zero_per_loaded_model)
        metrics.request_count.report_zero_for(
            lambda: [(name, "OK") for (name,) in self._zero_per_loaded_model()]
        )

    def start(self) -> None:
        if self.batcher:
            self.batcher.start()

    def stop(self) -> None:
        if self.batcher:
            self.batcher.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _forget(self, servable: Servable) -> None:
        """An unloaded servable's batch queues and learned costs go with it."""
        if self.batcher:
            self.batcher.forget(servable)
        self._inline.forget(servable)

    @property
    def inflight(self) -> int:
        return self._inflight_total

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Resolved:
        return self._manager.resolve(name, version, label)

    @staticmethod
    def signature(resolved: Resolved, name: str | None) -> Signature:
        if name is not None and not isinstance(name, str):
            raise invalid("the signature name must be a string")
        key = name or DEFAULT_SIGNATURE
        sig = resolved.servable.signatures.get(key)
        if sig is None:
            raise invalid(f'Serving signature name: "{key}" not found in signature def')
        return sig

    async def run(
        self,
        resolved: Resolved,
        signature: Signature,
        inputs: Tensors,
        output_keys: list[str] | None = None,
    ) -> Tensors:
        """Validate inputs against the signature, then run it (batched when enabled)."""
        inputs = validate.check_inputs(signature, inputs)
        output_keys = validate.check_output_keys(signature, output_keys)
        name = resolved.name
        self._inflight[name] = self._inflight.get(name, 0) + 1
        self._inflight_total += 1
        try:
            batcher = self.batcher if signature.batchable else None
            if self._inflight_total == 1:
                rows = rows_of(inputs) if signature.batchable else 1
                if self._may_inline(batcher, resolved.servable, signature, rows):
                    # Let the requests parsed in this loop iteration reach here first. A run
                    # inline blocks the loop, so under load the next request again found nothing
                    # else in flight: once one ran inline, every request did, one at a time (an
                    # MLP at 64 clients: batches of 1, 8x the CPU per request, p99 of 250 ms+).
                    await asyncio.sleep(0)
                if self._inflight_total == 1 and self._may_inline(
                    batcher, resolved.servable, signature, rows
                ):
                    if batcher:
                        batcher.observe_unbatched(name, rows)
                    return self._inline.timed_run(
                        resolved.servable, signature.name, inputs, output_keys
                    )
            if batcher:
                return await batcher.submit(
                    name, resolved.servable, signature.name, inputs, output_keys
                )
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool,
                self._inline.timed_run,
                resolved.servable,
                signature.name,
                inputs,
                output_keys,
            )
        except concurrent.futures.CancelledError:
            raise
        except ServingError:
            raise
        except RuntimeError as exc:  # the executor refuses work once shutting down
            raise ServingError(Code.UNAVAILABLE, f"server is shutting down: {exc}") from exc
        finally:
            self._inflight[name] -= 1
            self._inflight_total -= 1

    def _may_inline(
        self, batcher: BatchScheduler | None, servable: Servable, signature: Signature, rows: int
    ) -> bool:
        """A lone request may run on the event loop if quick, and if batching would not pad it."""
        if batcher and batcher.config.padded_size(rows) != rows:
            return False  # allowed_batch_sizes: the model expects padded batches
        return self._inline.allows(servable, signature.name, rows)

    def record(self, model: str, api: str, entrypoint: str, started: float, ok: bool) -> None:
        """Count one request and its latency under TF Serving's metric names."""
        self.metrics.request_count.inc((model, "OK" if ok else "ERROR"))
        self.metrics.request_latency.observe(
            (model, api, entrypoint), (time.perf_counter() - started) * 1e6
        )

    def _zero_per_loaded_model(self) -> dict[tuple[str, ...], float]:
        manager = self._manager
        return {(n,): 0.0 for n in manager.model_names() if manager.available_versions(n)}

    def _available_versions(self) -> dict[tuple[str, ...], float]:
        manager = self._manager
        return {(n,): float(len(manager.available_versions(n))) for n in manager.model_names()}
