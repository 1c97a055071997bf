"""The KEDA ScaledObject for a ModelDeployment in autoscaling mode keda.

KEDA's HPA scales the ModelDeployment itself through its `scale` subresource (spec.replicas),
and the operator passes spec.replicas on to the Deployment. The trigger reads the same PromQL as
the operator's own autoscaler (autoscaling/queries.py), narrowed to this one object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..api.crds import GROUP, VERSION
from ..api.modeldeployment import (
    DEFAULT_SCALE_DOWN_WINDOW_SECONDS,
    DEFAULT_SCALE_UP_WINDOW_SECONDS,
    Autoscaling,
    ModelDeploymentSpec,
    ScalingRules,
)
from ..autoscaling import queries
from .kinds import BY_KIND
from .names import ModelDeploymentRef, child_metadata
from .scheduling import cpu_request_cores

KIND = BY_KIND["ScaledObject"]
# A digest of the spec we wrote: a changed spec, fields dropped included, is re-applied, while a
# scale (which bumps the owner's generation) rewrites nothing here.
SPEC_HASH_ANNOTATION = "modelship.dev/spec-hash"


@dataclass(frozen=True)
class MetricsSource:
    """Where KEDA reads metrics: the operator's own Prometheus settings."""

    prometheus_url: str
    window: str = "3s"  # range of rate() windows, as in the operator's queries
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class Blocker:
    """Why no ScaledObject can be written for this spec now (a ScalingActive=False reason)."""

    reason: str
    message: str


def is_keda(spec: ModelDeploymentSpec) -> bool:
    return spec.autoscaling is not None and spec.autoscaling.mode == "keda"


def keda_blocker(spec: ModelDeploymentSpec, source: MetricsSource | None) -> Blocker | None:
    """What keeps a keda-mode object from its ScaledObject, if anything."""
    autoscaling = spec.autoscaling
    if autoscaling is None or autoscaling.mode != "keda":
        return None
    if source is None or not source.prometheus_url:
        return Blocker(
            "PrometheusNotConfigured",
            "mode keda needs the Prometheus address for the ScaledObject's trigger: start the "
            "operator with --prometheus-url (Helm value prometheus.url)",
        )
    if autoscaling.metric == queries.PROMQL:
        problem = queries.unbalanced(autoscaling.promql or "")
        if problem:
            return Blocker(
                "QueryFailed", f"autoscaling.promql is not a complete expression: {problem}"
            )
    if autoscaling.metric == queries.CPU and not cpu_request_cores(spec.server.resources):
        return Blocker("NoCPURequest", "cpuUtilization needs server.resources.requests.cpu")
    return None


def object_query(ref: ModelDeploymentRef, spec: ModelDeploymentSpec, window: str) -> str:
    """The PromQL of this object's trigger: one series, in the unit of `target`."""
    autoscaling = spec.autoscaling
    assert autoscaling is not None
    metric = autoscaling.metric
    if metric == queries.PROMQL:
        # On lines of its own, so that a trailing # comment cannot hide the closing bracket.
        return f"sum(\n{autoscaling.promql}\n)"
    query = queries.kind_query(metric, window, queries.object_selector((ref.namespace, ref.name)))
    if metric == queries.CPU:
        cores = cpu_request_cores(spec.server.resources)
        assert cores, "keda_blocker refuses cpuUtilization without a CPU request"
        # Percent of one pod's request, summed; AverageValue divides by the pods.
        return f"({query}) * 100 / {cores!r}"
    if metric == queries.P99_LATENCY:
        return f"({query}) / 1000"  # microseconds → milliseconds
    return query


def metric_type(metric: str) -> str:
    """AverageValue: the HPA divides by the pods (per-pod targets); Value: a deployment-wide
    figure (p99 latency), the HPA's ratio rule on the whole."""
    return "Value" if queries.OBSERVATION_KIND[metric] == "ratio" else "AverageValue"


def _direction(rules: ScalingRules | None, default_window: int, max_pods: int) -> dict[str, Any]:
    rules = rules or ScalingRules()
    window = rules.stabilization_window_seconds
    policies = [
        {"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
        for p in rules.policies or ()
    ]
    # No policy means "no limit" here, while the HPA's own defaults do limit: say so explicitly.
    policies = policies or [{"type": "Pods", "value": max_pods, "periodSeconds": 15}]
    return {
        "stabilizationWindowSeconds": default_window if window is None else window,
        "selectPolicy": rules.select_policy,
        "policies": policies,
    }


def hpa_behavior(autoscaling: Autoscaling) -> dict[str, Any]:
    """Our behavior in the HPA's shape, with our defaults written out (they differ from the
    HPA's: scale-up waits 10 s, and no policy means no limit)."""
    behavior = autoscaling.behavior
    return {
        "scaleUp": _direction(
            behavior.scale_up if behavior else None,
            DEFAULT_SCALE_UP_WINDOW_SECONDS,
            autoscaling.max_replicas,
        ),
        "scaleDown": _direction(
            behavior.scale_down if behavior else None,
            DEFAULT_SCALE_DOWN_WINDOW_SECONDS,
            autoscaling.max_replicas,
        ),
    }


def build_scaled_object(
    ref: ModelDeploymentRef, spec: ModelDeploymentSpec, source: MetricsSource
) -> dict[str, Any]:
    autoscaling = spec.autoscaling
    assert autoscaling is not None
    metadata = {
        "serverAddress": source.prometheus_url,
        "query": object_query(ref, spec, source.window),
        "threshold": str(autoscaling.target),
        # No samples is an error, not 0: KEDA's HPA then holds the replicas, as the operator's
        # own autoscaler does, instead of scaling a deployment down for lack of data.
        "ignoreNullValues": "false",
    }
    if source.insecure_skip_verify:
        metadata["unsafeSsl"] = "true"
    trigger: dict[str, Any] = {
        "type": "prometheus",
        "metricType": metric_type(autoscaling.metric),
        "metadata": metadata,
    }
    if autoscaling.keda_trigger_authentication:
        trigger["authenticationRef"] = {"name": autoscaling.keda_trigger_authentication}
    so_spec = {
        "scaleTargetRef": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "name": ref.name,
        },
        "minReplicaCount": autoscaling.min_replicas,
        "maxReplicaCount": autoscaling.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior(autoscaling)}},
        "triggers": [trigger],
    }
    digest = hashlib.sha256(json.dumps(so_spec, sort_keys=True).encode()).hexdigest()[:16]
    metadata_ = child_metadata(ref)
    metadata_["annotations"] = {SPEC_HASH_ANNOTATION: digest}
    return {
        "apiVersion": KIND.api_version,
        "kind": KIND.kind,
        "metadata": metadata_,
        "spec": so_spec,
    }
