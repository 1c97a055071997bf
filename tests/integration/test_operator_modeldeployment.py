"""The operator on the real control plane: children, status, GPU placement, lifecycle."""

from __future__ import annotations

import json
import time

from kube_helpers import (
    apply,
    condition,
    get,
    model_deployment,
    new_namespace,
    operator_writes,
    wait_for,
    wait_ready,
)
from modelship_localcluster.cluster import LocalCluster


def test_apply_creates_children_and_becomes_ready(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-basic")
    apply(
        operator,
        ns,
        model_deployment(
            "hp2",
            replicas=2,
            modelName="half_plus_two",
            server={
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            },
        ),
    )
    wait_ready(operator, ns, "hp2")
    md = get(operator, ns, "modeldeployment", "hp2")
    status = md["status"]
    assert status["observedGeneration"] == md["metadata"]["generation"]
    assert status["replicas"] == status["readyReplicas"] == status["updatedReplicas"] == 2
    assert status["selector"] == "modelship.dev/modeldeployment=hp2"
    assert status["url"] == f"http://hp2.{ns}.svc:8501/v1/models/half_plus_two"
    assert status["grpcUrl"] == f"hp2.{ns}.svc:8500"
    assert condition(md, "Reconciling")["status"] == "False"
    assert condition(md, "Stalled")["status"] == "False"

    dep = get(operator, ns, "deployment", "hp2")
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ModelDeployment",
        "hp2",
        md["metadata"]["uid"],
        True,
    )
    pod = dep["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"grpc": 8500, "http": 8501}
    assert "--model_name=half_plus_two" in server["args"]
    assert "--model_base_path=/mnt/models" in server["args"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert server["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert {"name": "LOG_LEVEL", "value": "debug"} in server["env"]
    assert pod["initContainers"][0]["command"][:2] == ["modelship", "fetch"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"

    svc = get(operator, ns, "service", "hp2")
    assert svc["spec"]["type"] == "ClusterIP"
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8501, "grpc": 8500}
    assert svc["spec"]["selector"] == {"modelship.dev/modeldeployment": "hp2"}
    pdb = get(operator, ns, "poddisruptionbudget", "hp2")
    assert pdb["spec"]["maxUnavailable"] == 1

    events = operator.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.kind=ModelDeployment",
        "-o",
        "json",
    ).stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"Created", "Ready"} <= reasons
    listing = operator.kubectl("get", "modelship", "-n", ns).stdout
    assert "hp2" in listing
    assert "True" in listing


def test_gpu_pods_land_on_the_requested_product(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-gpu")
    apply(
        operator,
        ns,
        model_deployment("a100", replicas=3, gpu={"count": 1, "product": "NVIDIA-A100-SXM4-40GB"}),
    )
    wait_ready(operator, ns, "a100")
    nodes = {
        n["metadata"]["name"]: n["metadata"]["labels"] for n in get(operator, ns, "nodes")["items"]
    }
    pods = get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=a100")["items"]
    assert len(pods) == 3
    for pod in pods:
        labels = nodes[pod["spec"]["nodeName"]]
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
        (server,) = pod["spec"]["containers"]
        assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
            pod["spec"]["tolerations"]
        )


def test_gpu_memory_floor_excludes_small_gpus(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-gpumem")
    apply(
        operator, ns, model_deployment("big", replicas=2, gpu={"count": 1, "minMemoryMiB": 20000})
    )
    wait_ready(operator, ns, "big")
    nodes = {
        n["metadata"]["name"]: n["metadata"]["labels"] for n in get(operator, ns, "nodes")["items"]
    }
    for pod in get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=big")["items"]:
        assert int(nodes[pod["spec"]["nodeName"]]["nvidia.com/gpu.memory"]) >= 20000


def test_impossible_gpu_request_reports_the_scheduler_reason(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-nogpu")
    apply(operator, ns, model_deployment("huge", gpu={"count": 16}))

    def not_ready_reason() -> dict[str, str] | None:
        cond = condition(get(operator, ns, "modeldeployment", "huge"), "Ready")
        return cond if cond.get("reason") == "Unschedulable" else None

    ready = wait_for("Ready=False with the scheduler's reason", not_ready_reason)
    assert ready["status"] == "False"
    assert "Insufficient nvidia.com/gpu" in ready["message"]
    nodes = len(get(operator, "default", "nodes")["items"])
    assert f"0/{nodes} nodes are available" in ready["message"]
    md = get(operator, ns, "modeldeployment", "huge")
    assert condition(md, "Reconciling")["status"] == "True"
    warning = operator.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "reason=Unschedulable,involvedObject.kind=ModelDeployment",
    ).stdout
    assert "Insufficient nvidia.com/gpu" in warning


def test_image_pull_failure_stalls_with_the_reason(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-pull")
    apply(operator, ns, model_deployment("badimage", server={"image": "kwok.invalid/missing:1"}))

    def stalled() -> dict[str, str] | None:
        cond = condition(get(operator, ns, "modeldeployment", "badimage"), "Stalled")
        return cond if cond.get("status") == "True" else None

    cond = wait_for("Stalled=True", stalled)
    assert cond["reason"] == "ImagePullBackOff"
    assert "kwok.invalid/missing:1" in cond["message"]


def test_delete_garbage_collects_children(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-gc")
    apply(operator, ns, model_deployment("gone", replicas=2))
    wait_ready(operator, ns, "gone")
    operator.kubectl("delete", "modeldeployment", "gone", "-n", ns, "--wait=true")
    wait_for(
        "the garbage collector",
        lambda: all(
            get(operator, ns, kind, "gone") is None
            for kind in ("deployment", "service", "poddisruptionbudget")
        ),
    )
    wait_for("pods to go", lambda: not get(operator, ns, "pods")["items"])


def test_drift_is_restored(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-drift")
    apply(operator, ns, model_deployment("drift", replicas=2))
    wait_ready(operator, ns, "drift")
    operator.kubectl("scale", "deployment/drift", "--replicas=5", "-n", ns)
    operator.kubectl("delete", "service", "drift", "-n", ns)
    operator.kubectl(
        "patch",
        "deployment",
        "drift",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/template/spec/containers/0/image",'
        ' "value": "example.com/other:1"}]',
    )
    wait_for(
        "the Deployment to be restored",
        lambda: (
            (d := get(operator, ns, "deployment", "drift"))
            and d["spec"]["replicas"] == 2
            and d["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
                "ghcr.io/modelship"
            )
        ),
    )
    wait_for("the Service to be recreated", lambda: get(operator, ns, "service", "drift"))
    wait_ready(operator, ns, "drift")
    events = operator.kubectl("get", "events", "-n", ns).stdout
    assert "DriftCorrected" in events


def test_kubectl_scale_and_spec_update_roll_out(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-scale")
    apply(operator, ns, model_deployment("sc"))
    wait_ready(operator, ns, "sc")
    assert get(operator, ns, "poddisruptionbudget", "sc") is None
    operator.kubectl("scale", "modeldeployment/sc", "--replicas=3", "-n", ns)
    wait_for(
        "3 ready replicas",
        lambda: (
            (md := get(operator, ns, "modeldeployment", "sc"))
            and md["status"].get("readyReplicas") == 3
            and condition(md, "Ready").get("status") == "True"
            and md["status"]["observedGeneration"] == md["metadata"]["generation"]
        ),
    )
    assert get(operator, ns, "deployment", "sc")["spec"]["replicas"] == 3
    assert get(operator, ns, "poddisruptionbudget", "sc") is not None

    before = get(operator, ns, "replicasets", "-l", "modelship.dev/modeldeployment=sc")["items"]
    apply(
        operator,
        ns,
        model_deployment("sc", replicas=3, server={"env": [{"name": "VERSION", "value": "2"}]}),
    )
    wait_for(
        "the new spec to roll out",
        lambda: (
            (md := get(operator, ns, "modeldeployment", "sc"))
            and md["metadata"]["generation"] == md["status"]["observedGeneration"]
            and condition(md, "Ready").get("status") == "True"
            and md["status"].get("updatedReplicas") == 3
        ),
    )
    after = get(operator, ns, "replicasets", "-l", "modelship.dev/modeldeployment=sc")["items"]
    assert len(after) == len(before) + 1, "a rolling update makes one new ReplicaSet"
    pods = get(operator, ns, "pods", "-l", "modelship.dev/modeldeployment=sc")["items"]
    for pod in pods:
        assert {"name": "VERSION", "value": "2"} in pod["spec"]["containers"][0]["env"]
    events = operator.kubectl("get", "events", "-n", ns).stdout
    assert "Scaled" in events
    assert "Updated" in events


def test_child_the_apiserver_refuses_stalls_without_a_hot_loop(operator: LocalCluster) -> None:
    ns = new_namespace(operator, "md-invalid")
    # Passes the CRD schema (Kubernetes' published one for affinity) but not the Deployment's
    # own validation: operator In needs values, a rule the OpenAPI schema does not carry.
    bad = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]
            }
        }
    }
    apply(operator, ns, model_deployment("refused", affinity=bad))

    def stalled() -> dict[str, str] | None:
        cond = condition(get(operator, ns, "modeldeployment", "refused"), "Stalled")
        return cond if cond.get("status") == "True" else None

    cond = wait_for("Stalled=True", stalled)
    assert cond["reason"] == "InvalidSpec"
    assert "operator" in cond["message"]  # the apiserver names the bad field
    writes = len(operator_writes(operator, ns))
    time.sleep(5)
    assert len(operator_writes(operator, ns)) == writes, "retried a spec that cannot work"
    # Fixing the spec clears the stall.
    apply(operator, ns, model_deployment("refused"))
    wait_ready(operator, ns, "refused")
    assert condition(get(operator, ns, "modeldeployment", "refused"), "Stalled")["status"] == (
        "False"
    )
