"""Pure builders: what a ModelDeployment spec turns into."""

from __future__ import annotations

from typing import Any

import pytest
from modelship_operator.api.modeldeployment import ModelDeploymentSpec
from modelship_operator.resources.children import GENERATION_ANNOTATION, desired_children
from modelship_operator.resources.deployment import build_deployment
from modelship_operator.resources.names import ModelDeploymentRef
from modelship_server.config_files import parse_batching

REF = ModelDeploymentRef(name="m", namespace="ns", uid="u-1", generation=3)


def _spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"storageUri": "s3://b/m", **fields})


def _pod(**fields: Any) -> dict[str, Any]:
    pod: dict[str, Any] = build_deployment(REF, _spec(**fields))["spec"]["template"]["spec"]
    return pod


def test_gpu_request_sets_limit_affinity_and_toleration() -> None:
    pod = _pod(gpu={"count": 2, "product": "NVIDIA-A100-SXM4-40GB", "minMemoryMiB": 40000})
    (server,) = pod["containers"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert {
        "key": "nvidia.com/gpu.product",
        "operator": "In",
        "values": ["NVIDIA-A100-SXM4-40GB"],
    } in term["matchExpressions"]
    assert {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["39999"]} in term[
        "matchExpressions"
    ]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_cpu_only_has_no_gpu_traits() -> None:
    pod = _pod()
    assert "affinity" not in pod
    assert "tolerations" not in pod
    assert "resources" not in pod["containers"][0]


def test_gpu_requirements_are_anded_into_every_user_term() -> None:
    user = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]
            }
        }
    }
    pod = _pod(affinity=user, gpu={"count": 1, "product": "L4"})
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert len(terms) == 2
    for term in terms:
        keys = [e["key"] for e in term["matchExpressions"]]
        assert keys == ["zone", "nvidia.com/gpu.product"]
    # The user's object is not modified in place.
    assert (
        len(
            user["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ][0]["matchExpressions"]
        )
        == 1
    )


def test_user_scheduling_and_env_pass_through() -> None:
    pod = _pod(
        nodeSelector={"pool": "inference"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        server={"env": [{"name": "A", "value": "1"}], "args": ["--rest_api_timeout_in_ms=9"]},
    )
    assert pod["nodeSelector"] == {"pool": "inference"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ]
    (server,) = pod["containers"]
    assert server["env"] == [{"name": "A", "value": "1"}]
    assert server["args"][-1] == "--rest_api_timeout_in_ms=9"


@pytest.mark.parametrize(
    ("uri", "volume_key", "init"),
    [
        ("pvc://claim/models/resnet", "persistentVolumeClaim", False),
        ("file:///srv/models", "hostPath", False),
        ("s3://bucket/m", "emptyDir", True),
        ("gs://bucket/m", "emptyDir", True),
        ("https://example.com/m.tar.gz", "emptyDir", True),
    ],
)
def test_storage_by_scheme(uri: str, volume_key: str, init: bool) -> None:
    pod = _pod(storageUri=uri)
    model = next(v for v in pod["volumes"] if v["name"] == "model")
    assert volume_key in model
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model")
    assert mount["readOnly"] is True
    assert ("initContainers" in pod) is init
    if uri.startswith("pvc://"):
        assert model["persistentVolumeClaim"] == {"claimName": "claim", "readOnly": True}
        assert mount["subPath"] == "models/resnet"


def test_credentials_come_only_from_the_secret() -> None:
    pod = _pod(storageSecretName="creds")
    (fetch,) = pod["initContainers"]
    assert fetch["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert "env" not in fetch
    assert fetch["image"] == pod["containers"][0]["image"]


def test_children_follow_replicas_batching_and_generation() -> None:
    one = desired_children(REF, _spec())
    assert set(one) == {"Deployment", "Service"}
    several = desired_children(
        REF, _spec(replicas=3, batching={"enabled": True, "maxBatchSize": 16})
    )
    assert set(several) == {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
    config = several["ConfigMap"]["data"]["batching_parameters.txt"]
    assert parse_batching(config).max_batch_size == 16
    server = several["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "--enable_batching=true" in server["args"]
    assert several["Deployment"]["metadata"]["annotations"][GENERATION_ANNOTATION] == "3"
    for child in several.values():
        assert child["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_topology_spread_only_when_several_pods_may_run() -> None:
    assert "topologySpreadConstraints" not in _pod(replicas=1)
    assert "topologySpreadConstraints" in _pod(replicas=2)
    assert "topologySpreadConstraints" in _pod(autoscaling={"minReplicas": 1, "maxReplicas": 4})
