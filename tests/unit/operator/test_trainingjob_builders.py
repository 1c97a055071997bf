"""Pure builders: what a TrainingJob spec turns into (a headless Service, one Job per role)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from modelship_operator.api.crds import MAX_TRAINING_JOB_NAME_LENGTH
from modelship_operator.api.trainingjob import Output, TrainingJobSpec
from modelship_operator.resources.children import GENERATION_ANNOTATION
from modelship_operator.resources.names import ObjectRef
from modelship_operator.resources.trainingjob.children import desired_children
from modelship_operator.resources.trainingjob.jobs import build_role_job, job_template_changed
from modelship_operator.resources.trainingjob.names import (
    OWNER_LABEL,
    ROLE_LABEL,
    exporter_role,
    job_name,
    pod_address,
    roles,
)
from modelship_operator.resources.trainingjob.service import build_service
from modelship_operator.resources.trainingjob.storage import exported_model_uri
from modelship_operator.resources.trainingjob.tfconfig import tf_config

REF = ObjectRef(name="mnist", namespace="ml", uid="u-1", generation=4, kind="TrainingJob")
IMAGE = "tensorflow/tensorflow:2.21.0"
ALL_ROLES = {
    "chief": {"image": IMAGE},
    "worker": {"replicas": 3, "image": IMAGE},
    "ps": {"replicas": 2, "image": IMAGE},
    "evaluator": {"image": IMAGE},
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _spec(replica_specs: dict[str, Any] | None = None, **fields: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate(
        {"replicaSpecs": replica_specs or {"worker": {"replicas": 2, "image": IMAGE}}, **fields}
    )


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow"
    return dict(container)


def _env(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(job)["env"]}


def _expanded_tf_config(value: str, index: int) -> dict[str, Any]:
    """What the container sees once Kubernetes expands $(MODELSHIP_TASK_INDEX)."""
    parsed: dict[str, Any] = json.loads(value.replace("$(MODELSHIP_TASK_INDEX)", str(index)))
    return parsed


# --- roles and names -------------------------------------------------------------------------


def test_roles_with_pods_in_tf_config_order() -> None:
    spec = _spec({**ALL_ROLES, "evaluator": {"replicas": 0, "image": IMAGE}})
    assert roles(spec) == ["chief", "worker", "ps"]
    assert roles(_spec(dict(reversed(list(ALL_ROLES.items()))))) == [
        "chief",
        "worker",
        "ps",
        "evaluator",
    ]


def test_the_chief_exports_else_worker_zero() -> None:
    assert exporter_role(_spec(ALL_ROLES)) == "chief"
    assert exporter_role(_spec()) == "worker"
    no_chief = {"chief": {"replicas": 0, "image": IMAGE}, "worker": {"image": IMAGE}}
    assert exporter_role(_spec(no_chief)) == "worker"


def test_pod_address_is_the_indexed_hostname_under_the_service() -> None:
    assert pod_address(REF, "worker", 7) == "mnist-worker-7.mnist-tf.ml.svc:2222"
    assert job_name(REF, "ps") == "mnist-ps"


def test_the_longest_allowed_name_gives_dns_label_hostnames() -> None:
    name = "n" * MAX_TRAINING_JOB_NAME_LENGTH
    ref = ObjectRef(name=name, namespace="ml", uid="u", generation=1, kind="TrainingJob")
    for role in ("chief", "worker", "ps", "evaluator"):
        hostname = pod_address(ref, role, 1023).split(".")[0]
        assert DNS_LABEL.match(hostname)
        assert len(hostname) <= 63, hostname
    assert len(pod_address(ref, "evaluator", 1023).split(".")[0]) == 63
    assert len(job_name(ref, "evaluator")) <= 63  # the Job name is a label value too


# --- TF_CONFIG ---------------------------------------------------------------------------------


def test_tf_config_lists_chief_workers_and_ps_but_not_the_evaluator() -> None:
    spec = _spec(ALL_ROLES)
    expected_cluster = {
        "chief": ["mnist-chief-0.mnist-tf.ml.svc:2222"],
        "worker": [f"mnist-worker-{i}.mnist-tf.ml.svc:2222" for i in range(3)],
        "ps": [f"mnist-ps-{i}.mnist-tf.ml.svc:2222" for i in range(2)],
    }
    for role in ("chief", "worker", "ps", "evaluator"):
        config = _expanded_tf_config(tf_config(REF, spec, role), 1)
        assert config == {"cluster": expected_cluster, "task": {"type": role, "index": 1}}
        assert list(config["cluster"]) == ["chief", "worker", "ps"]


def test_tf_config_task_index_is_the_env_reference_unquoted() -> None:
    value = tf_config(REF, _spec(), "worker")
    assert value.endswith('"task": {"type": "worker", "index": $(MODELSHIP_TASK_INDEX)}}')
    assert _expanded_tf_config(value, 0)["task"]["index"] == 0


def test_tf_config_leaves_out_roles_at_zero() -> None:
    spec = _spec({"chief": {"replicas": 0, "image": IMAGE}, "worker": {"image": IMAGE}})
    config = _expanded_tf_config(tf_config(REF, spec, "worker"), 0)
    assert config["cluster"] == {"worker": ["mnist-worker-0.mnist-tf.ml.svc:2222"]}


# --- env ---------------------------------------------------------------------------------------


def test_env_order_lets_tf_config_expand_the_task_index() -> None:
    user = [{"name": "EPOCHS", "value": "3"}, {"name": "A_FIRST", "value": "x"}]
    spec = _spec(
        {"worker": {"replicas": 2, "image": IMAGE, "env": user}},
        output={"storageUri": "s3://models/mnist"},
    )
    env = _container(build_role_job(REF, spec, "worker"))["env"]
    assert [e["name"] for e in env] == [
        "MODELSHIP_TASK_INDEX",
        "TF_CONFIG",
        "MODELSHIP_POD_IP",
        "MODELSHIP_METRICS_PORT",
        "MODELSHIP_OUTPUT_URI",
        "MODELSHIP_CHECKPOINT_DIR",
        "EPOCHS",
        "A_FIRST",
    ]
    by_name = {e["name"]: e for e in env}
    index_path = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert by_name["MODELSHIP_TASK_INDEX"]["valueFrom"] == {"fieldRef": {"fieldPath": index_path}}
    assert by_name["MODELSHIP_POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert by_name["MODELSHIP_METRICS_PORT"]["value"] == "9400"
    assert by_name["TF_CONFIG"]["value"] == tf_config(REF, spec, "worker")


def test_without_output_there_is_no_output_env() -> None:
    assert "MODELSHIP_OUTPUT_URI" not in _env(build_role_job(REF, _spec(), "worker"))


# --- output ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "value"),
    [
        ("pvc://models/mnist/v", "file:///mnt/output/mnist/v"),
        ("pvc://models", "file:///mnt/output"),
    ],
)
def test_output_on_a_claim_is_mounted_read_write(uri: str, value: str) -> None:
    job = build_role_job(REF, _spec(output={"storageUri": uri}), "worker")
    pod = job["spec"]["template"]["spec"]
    assert {"name": "output", "persistentVolumeClaim": {"claimName": "models"}} in pod["volumes"]
    mount = next(m for m in _container(job)["volumeMounts"] if m["name"] == "output")
    assert mount == {"name": "output", "mountPath": "/mnt/output"}  # writable, whole claim
    assert _env(job)["MODELSHIP_OUTPUT_URI"]["value"] == value
    assert "envFrom" not in _container(job)


@pytest.mark.parametrize("uri", ["s3://models/mnist", "gs://b/m", "file:///srv/models/mnist"])
def test_other_output_uris_pass_through(uri: str) -> None:
    job = build_role_job(REF, _spec(output={"storageUri": uri}), "worker")
    assert _env(job)["MODELSHIP_OUTPUT_URI"]["value"] == uri
    names = {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}
    assert names == {"checkpoints"}


def test_output_credentials_come_from_the_secret_like_the_fetch_container() -> None:
    spec = _spec(output={"storageUri": "s3://models/mnist", "storageSecretName": "s3-creds"})
    container = _container(build_role_job(REF, spec, "worker"))
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]


def test_a_claim_export_is_reported_as_the_claim() -> None:
    pvc = Output.model_validate({"storageUri": "pvc://models/mnist"})
    assert exported_model_uri(pvc, "file:///mnt/output/mnist/17") == "pvc://models/mnist/17"
    s3 = Output.model_validate({"storageUri": "s3://models/mnist"})
    assert exported_model_uri(s3, "s3://models/mnist/17") == "s3://models/mnist/17"
    assert exported_model_uri(pvc, "file:///mnt/outputs/17") == "file:///mnt/outputs/17"


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checkpoints", "volume", "mount"),
    [
        (
            None,
            {"name": "checkpoints", "emptyDir": {}},
            {"name": "checkpoints", "mountPath": "/mnt/checkpoints"},
        ),
        (
            {"storageUri": "pvc://train/mnist/ckpt"},
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "train"}},
            {"name": "checkpoints", "mountPath": "/mnt/checkpoints", "subPath": "mnist/ckpt"},
        ),
        (
            {"storageUri": "pvc://train"},
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "train"}},
            {"name": "checkpoints", "mountPath": "/mnt/checkpoints"},
        ),
        (
            {"storageUri": "file:///var/lib/ckpt"},
            {
                "name": "checkpoints",
                "hostPath": {"path": "/var/lib/ckpt", "type": "DirectoryOrCreate"},
            },
            {"name": "checkpoints", "mountPath": "/mnt/checkpoints"},
        ),
    ],
)
def test_checkpoints_volume(
    checkpoints: dict[str, Any] | None, volume: dict[str, Any], mount: dict[str, Any]
) -> None:
    spec = _spec(ALL_ROLES, checkpoints=checkpoints)
    for role in roles(spec):
        job = build_role_job(REF, spec, role)
        assert job["spec"]["template"]["spec"]["volumes"] == [volume]
        assert _container(job)["volumeMounts"] == [mount]
        assert _env(job)["MODELSHIP_CHECKPOINT_DIR"]["value"] == "/mnt/checkpoints"


# --- the Job -----------------------------------------------------------------------------------


def test_each_role_is_an_indexed_job_under_the_service_subdomain() -> None:
    spec = _spec(ALL_ROLES, runPolicy={"backoffLimit": 5, "activeDeadlineSeconds": 600})
    for role, count in (("chief", 1), ("worker", 3), ("ps", 2), ("evaluator", 1)):
        job = build_role_job(REF, spec, role)
        assert job["apiVersion"] == "batch/v1"
        assert job["metadata"]["name"] == f"mnist-{role}"
        body = job["spec"]
        assert body["completionMode"] == "Indexed"
        assert body["completions"] == body["parallelism"] == count
        assert body["backoffLimit"] == 5
        assert body["activeDeadlineSeconds"] == 600
        assert body["suspend"] is False
        assert "ttlSecondsAfterFinished" not in body  # the operator deletes the TrainingJob
        assert body["template"]["spec"]["subdomain"] == "mnist-tf"
        ports = {p["name"]: p["containerPort"] for p in _container(job)["ports"]}
        assert ports == {"tf": 2222, "metrics": 9400}


def test_suspend_reaches_every_job() -> None:
    spec = _spec(ALL_ROLES, runPolicy={"suspend": True})
    assert all(job["spec"].get("suspend") is True for job in desired_children(REF, spec)[1:])


def test_no_deadline_means_no_field() -> None:
    assert "activeDeadlineSeconds" not in build_role_job(REF, _spec(), "worker")["spec"]


def test_a_role_without_pods_has_no_job() -> None:
    spec = _spec({"chief": {"replicas": 0, "image": IMAGE}, "worker": {"image": IMAGE}})
    with pytest.raises(ValueError, match="chief"):
        build_role_job(REF, spec, "chief")
    with pytest.raises(ValueError, match="ps"):
        build_role_job(REF, spec, "ps")


@pytest.mark.parametrize(
    ("policy", "pod_policy", "with_failure_policy"),
    [("Never", "Never", False), ("OnFailure", "OnFailure", False), ("ExitCode", "Never", True)],
)
def test_restart_policy_mapping(policy: str, pod_policy: str, with_failure_policy: bool) -> None:
    spec = _spec({"worker": {"replicas": 2, "image": IMAGE, "restartPolicy": policy}})
    job = build_role_job(REF, spec, "worker")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == pod_policy
    assert ("podFailurePolicy" in job["spec"]) is with_failure_policy


def test_exit_code_policy_fails_on_the_programs_codes_and_ignores_disruption() -> None:
    spec = _spec({"worker": {"replicas": 2, "image": IMAGE, "restartPolicy": "ExitCode"}})
    disruption, permanent = build_role_job(REF, spec, "worker")["spec"]["podFailurePolicy"]["rules"]
    assert disruption == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert permanent["action"] == "FailJob"
    codes = permanent["onExitCodes"]
    assert codes["containerName"] == "tensorflow"
    assert codes["operator"] == "In"
    assert codes["values"] == list(range(1, 128))  # 138 (peer lost) and signals are retried
    assert len(codes["values"]) <= 255  # Kubernetes' limit


def test_restart_policy_is_per_role() -> None:
    spec = _spec(
        {
            "chief": {"image": IMAGE, "restartPolicy": "ExitCode"},
            "worker": {"replicas": 2, "image": IMAGE, "restartPolicy": "OnFailure"},
        }
    )
    assert "podFailurePolicy" in build_role_job(REF, spec, "chief")["spec"]
    assert "podFailurePolicy" not in build_role_job(REF, spec, "worker")["spec"]


def test_without_a_chief_worker_zero_decides_success() -> None:
    job = build_role_job(REF, _spec(), "worker")
    assert job["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}


def test_with_a_chief_no_job_has_a_success_policy() -> None:
    for job in desired_children(REF, _spec(ALL_ROLES))[1:]:
        assert "successPolicy" not in job["spec"], job["metadata"]["name"]


def test_gpu_placement_as_for_model_deployments() -> None:
    gpu = {"count": 2, "product": "NVIDIA-A100-SXM4-40GB", "minMemoryMiB": 40000}
    spec = _spec(
        {
            "chief": {"image": IMAGE},
            "worker": {
                "replicas": 2,
                "image": IMAGE,
                "gpu": gpu,
                "resources": {"limits": {"memory": "8Gi"}},
                "nodeSelector": {"pool": "train"},
                "tolerations": [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}],
            },
        }
    )
    worker = build_role_job(REF, spec, "worker")
    pod = worker["spec"]["template"]["spec"]
    assert _container(worker)["resources"] == {"limits": {"memory": "8Gi", "nvidia.com/gpu": "2"}}
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-40GB"]},
        {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["39999"]},
    ]
    assert pod["tolerations"] == [
        {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert pod["nodeSelector"] == {"pool": "train"}
    chief = build_role_job(REF, spec, "chief")["spec"]["template"]["spec"]
    assert not {"affinity", "tolerations", "nodeSelector"} & chief.keys()
    assert "resources" not in chief["containers"][0]


def test_command_and_args_are_the_users() -> None:
    spec = _spec({"worker": {"image": IMAGE, "command": ["modelship", "train"], "args": ["-v"]}})
    container = _container(build_role_job(REF, spec, "worker"))
    assert container["image"] == IMAGE
    assert container["command"] == ["modelship", "train"]
    assert container["args"] == ["-v"]
    assert "command" not in _container(build_role_job(REF, _spec(), "worker"))


def test_pods_run_restricted_without_api_access() -> None:
    job = build_role_job(REF, _spec(), "worker")
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = _container(job)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True


# --- labels, owners, the Service -------------------------------------------------------------


def test_labels_and_owner_on_every_child_and_pod() -> None:
    common = {
        "app.kubernetes.io/managed-by": "modelship",
        OWNER_LABEL: "mnist",
        "app.kubernetes.io/name": "modelship-training",
        "app.kubernetes.io/instance": "mnist",
    }
    children = desired_children(REF, _spec(ALL_ROLES))
    for child in children:
        assert child["metadata"]["namespace"] == "ml"
        assert child["metadata"]["labels"] == common
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "modelship.dev/v1alpha1",
            "kind": "TrainingJob",
            "name": "mnist",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    for job in children[1:]:
        role = job["metadata"]["name"].removeprefix("mnist-")
        assert job["spec"]["template"]["metadata"]["labels"] == {**common, ROLE_LABEL: role}


def test_headless_service_publishes_pods_before_they_are_ready() -> None:
    service = build_service(REF)
    assert service["metadata"]["name"] == "mnist-tf"
    assert service["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": {OWNER_LABEL: "mnist"},
        "ports": [{"name": "tf", "port": 2222, "targetPort": 2222, "protocol": "TCP"}],
    }


def test_desired_children_service_first_then_jobs_in_role_order() -> None:
    kinds = [(c["kind"], c["metadata"]["name"]) for c in desired_children(REF, _spec(ALL_ROLES))]
    assert kinds == [
        ("Service", "mnist-tf"),
        ("Job", "mnist-chief"),
        ("Job", "mnist-worker"),
        ("Job", "mnist-ps"),
        ("Job", "mnist-evaluator"),
    ]


# --- changes -----------------------------------------------------------------------------------


def test_jobs_carry_the_owners_generation() -> None:
    job = build_role_job(REF, _spec(), "worker")
    assert job["metadata"]["annotations"][GENERATION_ANNOTATION] == "4"


def _live(job: dict[str, Any]) -> dict[str, Any]:
    """A Job as the apiserver returns it: defaults and the Job controller's labels added."""
    live = json.loads(json.dumps(job))
    live["metadata"]["annotations"][GENERATION_ANNOTATION] = "1"
    template = live["spec"]["template"]
    template["metadata"]["labels"]["batch.kubernetes.io/job-name"] = "mnist-worker"
    template["spec"]["dnsPolicy"] = "ClusterFirst"
    template["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    live["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "x"}}
    return dict(live)


def test_defaults_added_by_kubernetes_are_not_a_change() -> None:
    desired = build_role_job(REF, _spec(), "worker")
    assert not job_template_changed(_live(desired), desired)


@pytest.mark.parametrize(
    "change",
    [
        {"runPolicy": {"suspend": True}},
        {"runPolicy": {"backoffLimit": 9}},
        {"runPolicy": {"activeDeadlineSeconds": 60}},
    ],
)
def test_fields_a_job_can_change_in_place_are_not_a_template_change(
    change: dict[str, Any],
) -> None:
    before = build_role_job(REF, _spec(), "worker")
    after = build_role_job(REF, _spec(**change), "worker")
    assert after["spec"] != before["spec"]
    assert not job_template_changed(_live(before), after)


@pytest.mark.parametrize(
    "replica_specs",
    [
        {"worker": {"replicas": 3, "image": IMAGE}},  # TF_CONFIG and completions
        {"worker": {"replicas": 2, "image": "tensorflow/tensorflow:2.22.0"}},
        {"worker": {"replicas": 2, "image": IMAGE, "restartPolicy": "ExitCode"}},
        {"worker": {"replicas": 2, "image": IMAGE, "env": [{"name": "A", "value": "1"}]}},
        {"chief": {"image": IMAGE}, "worker": {"replicas": 2, "image": IMAGE}},  # successPolicy
    ],
)
def test_immutable_changes_need_a_new_job(replica_specs: dict[str, Any]) -> None:
    before = build_role_job(REF, _spec(), "worker")
    after = build_role_job(REF, _spec(replica_specs), "worker")
    assert job_template_changed(_live(before), after)


def test_a_job_without_the_digest_is_replaced() -> None:
    desired = build_role_job(REF, _spec(), "worker")
    live = _live(desired)
    del live["metadata"]["annotations"]
    assert job_template_changed(live, desired)
