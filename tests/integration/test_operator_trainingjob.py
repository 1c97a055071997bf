"""The TrainingJob operator on the real control plane: its headless Service and Indexed Jobs, the
real Job controller's pods, and a status driven by what those pods really did.

Pods whose outcome matters run on a process node of this module's own, as real processes of a
small program (processpods_fakeapp.py) that exits with the code its arguments give, or keeps
running. Pods whose outcome does not matter land on kwok's fake nodes, where a Job's pod runs
and then completes with exit code 0."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import apply, condition, get, new_namespace, operator_writes, wait_for
from modelship_localcluster.cluster import LocalCluster
from process_node import PROCESS_LABEL, ProcessNodeAgent, python_program, register_node, running

HERE = Path(__file__).resolve().parent
FAKE_REPO = "example.test/trainer"
FAKE_IMAGE = f"{FAKE_REPO}:1"  # a real process on the process node
KWOK_IMAGE = "example.test/kwok-trainer:1"  # a kwok pod: runs, then completes
OWNER_LABEL = "modelship.dev/trainingjob"
ROLE_LABEL = "modelship.dev/replica-type"
INDEX_ENV = "MODELSHIP_TASK_INDEX"
FAILED_TWICE = {"worker": {"active": 0, "succeeded": 0, "failed": 2}}
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


# ---- the process node --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process_node(
    operator: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessNodeAgent]:
    """The process-pods kubelet for this module's node, with the test image mapped to
    processpods_fakeapp.py."""
    name = register_node(operator, "process-tj")
    root = tmp_path_factory.mktemp("processpods-tj")
    trainer = python_program(root / "trainer", HERE / "processpods_fakeapp.py")
    with running(ProcessNodeAgent(operator, name, root, {FAKE_REPO: trainer})) as agent:
        yield agent
    operator.kubectl("delete", "node", name, "--wait=false", check=False)


# ---- helpers -----------------------------------------------------------------------------------


def kwok_role(replicas: int = 1, **extra: Any) -> dict[str, Any]:
    return {"replicas": replicas, "image": KWOK_IMAGE, **extra}


def process_role(node: ProcessNodeAgent, args: list[str], replicas: int = 1, **extra: Any) -> dict:
    """A role whose pods run processpods_fakeapp.py with `args` on the process node: `--exit N`
    exits N at once, no arguments keeps running until SIGTERM."""
    return {
        "replicas": replicas,
        "image": FAKE_IMAGE,
        "args": args,
        "nodeSelector": {PROCESS_LABEL: "true", "kubernetes.io/hostname": node.node},
        "tolerations": [{"key": PROCESS_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        **extra,
    }


def checkpoint_claim(cluster: LocalCluster, ns: str) -> None:
    """A claim `checkpoints` bound to a PersistentVolume of its own (kwok pods mount nothing)."""
    volume = f"checkpoints-{ns}"
    apply(  # cluster-scoped: kubectl ignores the namespace
        cluster,
        ns,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "manual",
                "hostPath": {"path": f"/var/tmp/{volume}"},
                "claimRef": {"namespace": ns, "name": "checkpoints"},
            },
        },
    )
    apply(
        cluster,
        ns,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "checkpoints"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "manual",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )


def training_job(name: str, roles: dict[str, Any], **run_policy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"replicaSpecs": roles, "runPolicy": run_policy},
    }


def tj(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = get(cluster, ns, "trainingjob", name)
    return found


def wait_state(
    cluster: LocalCluster, ns: str, name: str, state: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = tj(cluster, ns, name)
        return found if found and (found.get("status") or {}).get("state") == state else None

    try:
        return wait_for(f"TrainingJob {name} {state}", reached, timeout)
    except AssertionError as err:
        jobs = get(cluster, ns, "jobs")
        summary = {j["metadata"]["name"]: j.get("status") for j in (jobs or {}).get("items", [])}
        raise AssertionError(f"{err}\nnow: {tj(cluster, ns, name)}\njobs: {summary}") from None


def role_pods(cluster: LocalCluster, ns: str, name: str, role: str) -> list[dict[str, Any]]:
    pods = get(cluster, ns, "pods", "-l", f"{OWNER_LABEL}={name},{ROLE_LABEL}={role}")
    return sorted(pods["items"], key=lambda p: p["metadata"]["creationTimestamp"])


def env_of(template: dict[str, Any]) -> list[dict[str, Any]]:
    (container,) = template["spec"]["containers"]
    return list(container["env"])


def tf_config_of(template: dict[str, Any], index: int) -> dict[str, Any]:
    """TF_CONFIG as the container sees it: Kubernetes expands $(MODELSHIP_TASK_INDEX) from the
    variable defined before it."""
    env = env_of(template)
    names = [e["name"] for e in env]
    assert names.index(INDEX_ENV) < names.index("TF_CONFIG"), names
    value = next(e["value"] for e in env if e["name"] == "TF_CONFIG")
    assert f"$({INDEX_ENV})" in value
    parsed: dict[str, Any] = json.loads(value.replace(f"$({INDEX_ENV})", str(index)))
    return parsed


def events(cluster: LocalCluster, ns: str, kind: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.kind={kind}", "-o", "json"
    ).stdout
    return list(json.loads(out)["items"])


@pytest.fixture
def ns(operator: LocalCluster) -> Iterator[str]:
    name = new_namespace(operator, "tj")
    yield name
    operator.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---- objects -----------------------------------------------------------------------------------


def test_roles_become_indexed_jobs_with_tf_config(operator: LocalCluster, ns: str) -> None:
    roles = {
        "chief": kwok_role(1),
        "worker": kwok_role(2),
        "ps": kwok_role(1),
        "evaluator": kwok_role(1),
    }
    job = training_job("mnist", roles, cleanPodPolicy="None")
    # An evaluator reads the chief's checkpoints, so it needs shared checkpoint storage: a claim
    # (a restricted namespace refuses hostPath volumes), bound to a PersistentVolume here.
    job["spec"]["checkpoints"] = {"storageUri": "pvc://checkpoints/mnist"}
    checkpoint_claim(operator, ns)
    apply(operator, ns, job)
    body = wait_for("the TrainingJob's Jobs", lambda: len(get(operator, ns, "jobs")["items"]) == 4)
    assert body
    owner = tj(operator, ns, "mnist")
    assert owner is not None
    uid = owner["metadata"]["uid"]
    labels = {
        "app.kubernetes.io/managed-by": "modelship",
        OWNER_LABEL: "mnist",
        "app.kubernetes.io/name": "modelship-training",
        "app.kubernetes.io/instance": "mnist",
    }

    def owned(obj: dict[str, Any]) -> None:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "TrainingJob",
            "mnist",
            uid,
            True,
        )
        assert labels.items() <= obj["metadata"]["labels"].items()

    # Not "mnist": a ModelDeployment serving the export may own that Service name.
    svc = get(operator, ns, "service", "mnist-tf")
    owned(svc)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {OWNER_LABEL: "mnist"}
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("tf", 2222)]

    def address(role: str, i: int) -> str:
        return f"mnist-{role}-{i}.mnist-tf.{ns}.svc:2222"

    cluster = {
        "chief": [address("chief", 0)],
        "worker": [address("worker", 0), address("worker", 1)],
        "ps": [address("ps", 0)],
    }
    counts = {"chief": 1, "worker": 2, "ps": 1, "evaluator": 1}
    for role, count in counts.items():
        job = get(operator, ns, "job", f"mnist-{role}")
        owned(job)
        spec = job["spec"]
        assert spec["completionMode"] == "Indexed"
        assert spec["completions"] == spec["parallelism"] == count
        assert "successPolicy" not in spec  # the chief's completion is the job's
        template = spec["template"]
        assert template["spec"]["subdomain"] == "mnist-tf"
        assert (labels | {ROLE_LABEL: role}).items() <= template["metadata"]["labels"].items()
        (container,) = template["spec"]["containers"]
        assert container["name"] == "tensorflow"
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
            "tf": 2222,
            "metrics": 9400,
        }
        env = env_of(template)
        assert env[0] == {
            "name": INDEX_ENV,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": INDEX_FIELD}},
        }
        assert env[1]["name"] == "TF_CONFIG"
        for index in range(count):
            config = tf_config_of(template, index)
            assert config == {"cluster": cluster, "task": {"type": role, "index": index}}

    # The Job controller made every pod, named for TF_CONFIG's addresses.
    def all_pods() -> list[dict[str, Any]] | None:
        pods = get(operator, ns, "pods", "-l", f"{OWNER_LABEL}=mnist")["items"]
        return pods if len(pods) >= 5 else None

    pods = wait_for("5 training pods", all_pods)
    hosts = sorted(
        f"{p['spec']['hostname']}.{p['spec']['subdomain']}:{p['metadata']['labels'][ROLE_LABEL]}"
        for p in pods
    )
    assert hosts == sorted(
        f"mnist-{role}-{i}.mnist-tf:{role}" for role, count in counts.items() for i in range(count)
    )
    # kwok completes every pod of a Job: with a chief, the chief's Job decides.
    done = wait_state(operator, ns, "mnist", "Succeeded")
    assert condition(done, "Ready")["status"] == "True"


def test_worker_only_job_succeeds_from_worker_zero(
    operator: LocalCluster, ns: str, process_node: ProcessNodeAgent
) -> None:
    apply(
        operator,
        ns,
        training_job("solo", {"worker": process_role(process_node, ["--exit", "0"])}),
    )
    job = wait_for("the worker Job", lambda: get(operator, ns, "job", "solo-worker"))
    assert job["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    done = wait_state(operator, ns, "solo", "Succeeded", timeout=90)
    status = done["status"]
    assert condition(done, "Ready")["status"] == "True"
    assert condition(done, "Stalled")["status"] == "False"
    assert condition(done, "Reconciling")["status"] == "False"
    assert status["completionTime"] >= status["startTime"]
    assert status["observedGeneration"] == done["metadata"]["generation"]
    assert status["replicaStatuses"] == {"worker": {"active": 0, "succeeded": 1, "failed": 0}}
    (pod,) = role_pods(operator, ns, "solo", "worker")
    assert pod["spec"]["nodeName"] == process_node.node
    (state,) = pod["status"]["containerStatuses"]
    assert state["state"]["terminated"]["exitCode"] == 0
    reasons = {e["reason"] for e in events(operator, ns, "TrainingJob")}
    assert "Succeeded" in reasons
    # cleanPodPolicy Running deletes only Jobs still running: this one finished.
    assert "CleanedUp" not in reasons
    assert condition(get(operator, ns, "job", "solo-worker"), "Complete")["status"] == "True"

    # At rest: a finished job gets no more writes (status, events, children).
    time.sleep(2)
    before = len(operator_writes(operator, ns))
    time.sleep(6)
    after = operator_writes(operator, ns)
    assert len(after) == before, [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("subresource"))
        for w in after[before:]
    ]


def test_failures_follow_backoff_and_exit_codes(
    operator: LocalCluster, ns: str, process_node: ProcessNodeAgent
) -> None:
    """Three jobs at once: exit 1 under Never with backoffLimit 1 (two pods, then Failed); exit 3
    under ExitCode (not retryable: Failed after one pod); exit 138 under ExitCode (retryable:
    two pods with backoffLimit 1)."""
    never = process_role(process_node, ["--exit", "1"])
    permanent = process_role(process_node, ["--exit", "3"], restartPolicy="ExitCode")
    retried = process_role(process_node, ["--exit", "138"], restartPolicy="ExitCode")
    for name, role in (("never", never), ("permanent", permanent), ("retried", retried)):
        apply(operator, ns, training_job(name, {"worker": role}, backoffLimit=1))

    failed = wait_state(operator, ns, "permanent", "Failed", timeout=60)
    stalled = condition(failed, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "PodFailurePolicy"), stalled
    assert condition(failed, "Ready")["status"] == "False"
    assert failed["status"]["completionTime"]
    assert len(role_pods(operator, ns, "permanent", "worker")) == 1

    for name in ("never", "retried"):
        failed = wait_state(operator, ns, name, "Failed", timeout=90)
        stalled = condition(failed, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", "BackoffLimitExceeded"), name
        assert condition(failed, "Ready")["status"] == "False"
        assert condition(failed, "Reconciling")["status"] == "False"
        pods = role_pods(operator, ns, name, "worker")
        assert len(pods) == 2, name  # the first try and one retry
        for pod in pods:
            (state,) = pod["status"]["containerStatuses"]
            assert state["state"]["terminated"]["exitCode"] == (1 if name == "never" else 138)
        # It started when its first pod did, though no look caught a pod running; the Job
        # controller waits at least 10 s before the retry.
        (first,) = pods[0]["status"]["containerStatuses"]
        assert failed["status"]["startTime"] == first["state"]["terminated"]["startedAt"]
        assert failed["status"]["startTime"] < failed["status"]["completionTime"]
        # The final counts, as the Job has them once it has failed.
        job = get(operator, ns, "job", f"{name}-worker")
        assert (job["status"].get("failed"), job["status"].get("active", 0)) == (2, 0)
        try:
            wait_for(
                f"{name}'s failed pods counted",
                lambda n=name: tj(operator, ns, n)["status"]["replicaStatuses"] == FAILED_TWICE,
                timeout=10,
            )
        except AssertionError:
            status = tj(operator, ns, name)["status"]
            raise AssertionError(f"{status}, job: {job['status']}") from None
    warnings = {e["reason"] for e in events(operator, ns, "TrainingJob") if e["type"] == "Warning"}
    assert {"PodFailurePolicy", "BackoffLimitExceeded"} <= warnings


# ---- runPolicy ---------------------------------------------------------------------------------


def test_suspend_holds_pods_and_the_deadline_fails_the_job(
    operator: LocalCluster, ns: str, process_node: ProcessNodeAgent
) -> None:
    forever = process_role(process_node, [])  # runs until SIGTERM
    apply(operator, ns, training_job("held", {"worker": forever}, suspend=True))
    apply(operator, ns, training_job("late", {"worker": forever}, activeDeadlineSeconds=3))

    held = wait_state(operator, ns, "held", "Suspended")
    assert condition(held, "Ready")["status"] == "False"
    assert get(operator, ns, "job", "held-worker")["spec"]["suspend"] is True
    # Kueue admits a job by flipping suspend: until then the Job controller makes no pods.
    failed = wait_state(operator, ns, "late", "Failed", timeout=30)
    assert not role_pods(operator, ns, "held", "worker")
    stalled = condition(failed, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "DeadlineExceeded"), stalled
    job = get(operator, ns, "job", "late-worker")
    assert job["spec"]["activeDeadlineSeconds"] == 3
    started = job["status"]["startTime"]
    assert failed["status"]["completionTime"] >= started
    # The Job controller stops a job past its deadline: its running pod goes. The failed Job
    # itself stays (cleanPodPolicy Running deletes only Jobs still running), with its record.
    wait_for("the late pod to go", lambda: not role_pods(operator, ns, "late", "worker"), 30)
    job = wait_for(
        "the late Job Failed",
        lambda: (
            (j := get(operator, ns, "job", "late-worker"))
            and condition(j, "Failed").get("status") == "True"
            and j
        ),
    )
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
    assert not [e for e in events(operator, ns, "TrainingJob") if e["reason"] == "CleanedUp"]

    apply(operator, ns, training_job("held", {"worker": forever}, suspend=False))
    running = wait_state(operator, ns, "held", "Running", timeout=30)
    assert condition(running, "Reconciling")["status"] == "True"
    assert get(operator, ns, "job", "held-worker")["spec"]["suspend"] is False
    (pod,) = role_pods(operator, ns, "held", "worker")
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] == process_node.node
    counts = {"worker": {"active": 1, "succeeded": 0, "failed": 0}}
    wait_for(
        "the running pod counted",
        lambda: tj(operator, ns, "held")["status"]["replicaStatuses"] == counts,
    )
    # While it runs the operator asks the exporter for progress every few seconds; this one
    # reports none, so nothing changes and nothing is written.
    time.sleep(1)
    before = len(operator_writes(operator, ns))
    time.sleep(5)
    after = operator_writes(operator, ns)
    assert len(after) == before, [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("name"))
        for w in after[before:]
    ]


def test_ttl_deletes_the_finished_training_job(operator: LocalCluster, ns: str) -> None:
    apply(operator, ns, training_job("brief", {"worker": kwok_role()}, ttlSecondsAfterFinished=2))
    wait_for("the worker Job", lambda: get(operator, ns, "job", "brief-worker"))
    wait_for("the TrainingJob to be deleted", lambda: tj(operator, ns, "brief") is None, 15)
    reasons = {e["reason"] for e in events(operator, ns, "TrainingJob")}
    assert "Succeeded" in reasons  # it finished first
    wait_for(
        "its children to go with it",
        lambda: (
            get(operator, ns, "job", "brief-worker") is None
            and get(operator, ns, "service", "brief-tf") is None
        ),
    )


def test_clean_pod_policy_deletes_what_runs_then_writes_nothing(
    operator: LocalCluster, ns: str, process_node: ProcessNodeAgent
) -> None:
    """The chief exits 0 while its parameter server and worker would run forever."""

    def roles() -> dict[str, Any]:
        return {
            "chief": process_role(process_node, ["--exit", "0"]),
            "worker": process_role(process_node, []),
            "ps": process_role(process_node, []),
        }

    apply(operator, ns, training_job("running", roles(), cleanPodPolicy="Running"))
    apply(operator, ns, training_job("all", roles(), cleanPodPolicy="All"))
    for name in ("running", "all"):
        done = wait_state(operator, ns, name, "Succeeded", timeout=60)
        assert condition(done, "Ready")["status"] == "True"

    def jobs_left(name: str) -> set[str]:
        jobs = get(operator, ns, "jobs", "-l", f"{OWNER_LABEL}={name}")["items"]
        return {j["metadata"]["name"] for j in jobs if not j["metadata"].get("deletionTimestamp")}

    wait_for(
        "Running: the unfinished Jobs deleted", lambda: jobs_left("running") == {"running-chief"}
    )
    wait_for("All: every Job deleted", lambda: not jobs_left("all"))
    for name in ("running", "all"):
        for role in ("ps", "worker"):
            wait_for(
                f"{name}'s {role} pods to go",
                lambda n=name, r=role: not role_pods(operator, ns, n, r),
                timeout=30,
            )
    (chief,) = role_pods(operator, ns, "running", "chief")
    assert chief["status"]["phase"] == "Succeeded"
    cleaned = [e for e in events(operator, ns, "TrainingJob") if e["reason"] == "CleanedUp"]
    assert cleaned
    # The Service stays: the job's record, until the TrainingJob itself goes.
    assert get(operator, ns, "service", "all-tf") is not None
    assert get(operator, ns, "trainingjob", "all")["status"]["state"] == "Succeeded"

    # At rest: the operator writes nothing more for finished, cleaned-up jobs, including in the
    # periodic resync (every 15 s here).
    time.sleep(2)
    before = len(operator_writes(operator, ns))
    time.sleep(16)
    after = operator_writes(operator, ns)
    assert len(after) == before, [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("name"))
        for w in after[before:]
    ]


# ---- changes -----------------------------------------------------------------------------------


def test_template_change_recreates_the_job_and_drift_is_restored(
    operator: LocalCluster, ns: str, process_node: ProcessNodeAgent
) -> None:
    def spec(version: str) -> dict[str, Any]:
        env = [{"name": "VERSION", "value": version}]
        return training_job("edit", {"worker": process_role(process_node, [], env=env)})

    apply(operator, ns, spec("1"))
    wait_state(operator, ns, "edit", "Running", timeout=30)
    old = get(operator, ns, "job", "edit-worker")
    # A Job's pod template cannot change: the operator deletes the Job and creates it again.
    apply(operator, ns, spec("2"))

    def replaced() -> dict[str, Any] | None:
        job = get(operator, ns, "job", "edit-worker")
        if not job or job["metadata"]["uid"] == old["metadata"]["uid"]:
            return None
        return job

    new = wait_for("a new worker Job", replaced, timeout=30)
    assert {"name": "VERSION", "value": "2"} in env_of(new["spec"]["template"])
    wait_for(
        "one running pod of the new template",
        lambda: (
            [
                p["status"].get("phase")
                for p in role_pods(operator, ns, "edit", "worker")
                if not p["metadata"].get("deletionTimestamp")
            ]
            == ["Running"]
            and {"name": "VERSION", "value": "2"}
            in role_pods(operator, ns, "edit", "worker")[-1]["spec"]["containers"][0]["env"]
        ),
        timeout=30,
    )
    running = wait_state(operator, ns, "edit", "Running")
    assert running["status"]["observedGeneration"] == running["metadata"]["generation"] == 2
    assert "Recreating" in {e["reason"] for e in events(operator, ns, "TrainingJob")}

    # Someone deletes the headless Service: the pods' names would stop resolving; it comes back.
    operator.kubectl("delete", "service", "edit-tf", "-n", ns)
    svc = wait_for("the Service to be recreated", lambda: get(operator, ns, "service", "edit-tf"))
    assert svc["spec"]["clusterIP"] == "None"
    assert get(operator, ns, "job", "edit-worker")["metadata"]["uid"] == new["metadata"]["uid"]


# ---- PodSecurity -------------------------------------------------------------------------------


def test_restricted_namespace_admits_the_training_pods(operator: LocalCluster, ns: str) -> None:
    operator.kubectl(
        "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    # The namespace does enforce: a pod with no securityContext is refused.
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "main", "image": KWOK_IMAGE}]},
    }
    refused_pod = operator.kubectl(
        "apply", "--dry-run=server", "-n", ns, "-f", "-", input_text=json.dumps(bare), check=False
    )
    assert refused_pod.returncode != 0
    assert "violates PodSecurity" in refused_pod.stderr
    roles = {"chief": kwok_role(), "worker": kwok_role(2)}
    apply(operator, ns, training_job("secure", roles, cleanPodPolicy="None"))
    pods = wait_for(
        "3 training pods",
        lambda: (
            len(found := get(operator, ns, "pods", "-l", f"{OWNER_LABEL}=secure")["items"]) == 3
            and found
        ),
    )
    assert {p["metadata"]["labels"][ROLE_LABEL] for p in pods} == {"chief", "worker"}
    wait_state(operator, ns, "secure", "Succeeded")
    refused = [e for e in events(operator, ns, "Job") if e["reason"] == "FailedCreate"]
    assert not refused, [e["message"] for e in refused]
