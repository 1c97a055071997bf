"""The per-object gauges the chart's alerts read."""

from __future__ import annotations

from modelship_operator.controller.object_metrics import (
    MODEL_DEPLOYMENT_READY,
    TRAINING_JOB_STATE,
    forget_model_deployment,
    forget_training_job,
    record_model_deployment,
    record_training_job,
)
from prometheus_client import REGISTRY


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_ready_follows_the_condition_and_goes_with_the_object() -> None:
    key = ("ns", "gauge-md")
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    record_model_deployment(key, ready)
    assert _value(MODEL_DEPLOYMENT_READY._name, namespace="ns", modeldeployment="gauge-md") == 1
    record_model_deployment(key, {"status": {"observedGeneration": 0}})
    assert _value(MODEL_DEPLOYMENT_READY._name, namespace="ns", modeldeployment="gauge-md") == 0
    forget_model_deployment(key)
    forget_model_deployment(key)  # twice is fine
    assert _value(MODEL_DEPLOYMENT_READY._name, namespace="ns", modeldeployment="gauge-md") is None


def test_one_training_state_is_1_at_a_time() -> None:
    key = ("ns", "gauge-tj")
    record_training_job(key, {"status": {"state": "Failed"}})
    name = TRAINING_JOB_STATE._name
    assert _value(name, namespace="ns", trainingjob="gauge-tj", state="Failed") == 1
    assert _value(name, namespace="ns", trainingjob="gauge-tj", state="Running") == 0
    record_training_job(key, {})
    assert _value(name, namespace="ns", trainingjob="gauge-tj", state="Pending") == 1
    assert _value(name, namespace="ns", trainingjob="gauge-tj", state="Failed") == 0
    forget_training_job(key)
    assert _value(name, namespace="ns", trainingjob="gauge-tj", state="Pending") is None
