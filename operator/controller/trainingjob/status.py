"""A TrainingJob's status from a judgement, its Jobs and what the exporter reported. Pure."""

from __future__ import annotations

from typing import Any

from ...resources.names import ObjectRef
from ..status import condition
from .state import Judgement

# Conditions kstatus and GitOps tools read: Reconciling while it trains, Stalled when it failed,
# Ready once the model is exported.
_RECONCILING = ("Pending", "Running")


def conditions(
    judgement: Judgement, generation: int, previous: dict[str, Any], now: str
) -> list[dict[str, Any]]:
    old = {c["type"]: c for c in previous.get("conditions", []) if "type" in c}
    succeeded = judgement.state == "Succeeded"
    reconciling = judgement.state in _RECONCILING
    stalled = judgement.state == "Failed"
    return [
        condition("Ready", succeeded, judgement.reason, judgement.message, generation, old, now),
        condition(
            "Reconciling",
            reconciling,
            judgement.reason if reconciling else "Idle",
            judgement.message if reconciling else "",
            generation,
            old,
            now,
        ),
        condition(
            "Stalled",
            stalled,
            judgement.reason if stalled else "Idle",
            judgement.message if stalled else "",
            generation,
            old,
            now,
        ),
    ]


def build_status(
    ref: ObjectRef,
    judgement: Judgement,
    previous: dict[str, Any],
    now: str,
    *,
    replica_statuses: dict[str, dict[str, int]],
    progress: dict[str, Any] | None,
    exported_model_uri: str | None,
    started_at: str | None = None,
) -> dict[str, Any]:
    """`started_at`: when the first container started, if known (else the first look that
    found the job running or finished)."""
    status: dict[str, Any] = {
        "observedGeneration": ref.generation,
        "state": judgement.state,
        "replicaStatuses": replica_statuses,
        "conditions": conditions(judgement, ref.generation, previous, now),
    }
    start = previous.get("startTime")
    if start is None and judgement.state in ("Running", "Succeeded", "Failed"):
        start = started_at or now
    if start:
        status["startTime"] = start
    if judgement.state in ("Succeeded", "Failed"):
        status["completionTime"] = previous.get("completionTime") or judgement.finished_at or now
    if progress:
        status["progress"] = progress
    if exported_model_uri:
        status["exportedModelUri"] = exported_model_uri
    return status


def invalid_spec_status(
    ref: ObjectRef, reason: str, message: str, previous: dict[str, Any], now: str
) -> dict[str, Any]:
    """Stalled for a spec the operator cannot act on (refused by us or by the apiserver), or a
    write that RBAC or a quota forbade; what was observed before is kept."""
    status = {k: v for k, v in previous.items() if k != "conditions"}
    status["observedGeneration"] = ref.generation
    old = {c["type"]: c for c in previous.get("conditions", []) if "type" in c}
    g = ref.generation
    status["conditions"] = [
        condition("Ready", False, reason, message, g, old, now),
        condition("Reconciling", False, "Idle", "", g, old, now),
        condition("Stalled", True, reason, message, g, old, now),
    ]
    return status
