"""A TrainingJob's state and progress, judged from its Jobs, pods and reports, without a cluster."""

from __future__ import annotations

from typing import Any

from modelship_operator.controller.trainingjob.progress import (
    ProgressProber,
    from_metrics_text,
    from_termination_message,
)
from modelship_operator.controller.trainingjob.state import (
    exporter_pod,
    judge,
    replica_statuses,
    termination_message,
)


def _job(role: str, *conditions: tuple[str, str], **counts: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"t-{role}"},
        "status": {
            **counts,
            "conditions": [
                {"type": kind, "status": "True", "reason": reason, "message": f"{reason}!"}
                for kind, reason in conditions
            ],
        },
    }


def _pod(role: str, index: str, phase: str = "Running", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"t-{role}-{index}",
            "labels": {"modelship.dev/replica-type": role},
            "annotations": {"batch.kubernetes.io/job-completion-index": index},
            "creationTimestamp": extra.pop("created", "2026-01-01T00:00:00Z"),
        },
        "status": {"phase": phase, "podIP": "127.0.0.9", **extra},
    }


def test_any_role_failing_fails_the_job_with_the_jobs_reason() -> None:
    jobs = {
        "chief": _job("chief", active=1),
        "worker": _job("worker", ("Failed", "BackoffLimitExceeded"), failed=4),
    }
    verdict = judge(jobs, [], "chief", suspended=False)
    assert verdict.state == "Failed"
    assert verdict.reason == "BackoffLimitExceeded"
    assert "worker Job t-worker" in verdict.message
    assert "BackoffLimitExceeded!" in verdict.message


def test_success_comes_from_the_exporter_only() -> None:
    jobs = {"chief": _job("chief", active=1), "worker": _job("worker", ("Complete", "Done"))}
    assert judge(jobs, [_pod("chief", "0")], "chief", suspended=False).state == "Running"
    jobs["chief"] = _job("chief", ("Complete", "Done"), succeeded=1)
    assert judge(jobs, [], "chief", suspended=False).state == "Succeeded"
    worker_only = {"worker": _job("worker", ("SuccessCriteriaMet", "SuccessPolicy"))}
    assert judge(worker_only, [], "worker", suspended=False).state == "Succeeded"


def test_finished_pods_before_the_job_completes_stay_running() -> None:
    # The chief's pod has exited 0 but its Job has not been marked Complete yet.
    jobs = {"chief": _job("chief"), "worker": _job("worker", succeeded=2)}
    pods = [_pod("chief", "0", "Succeeded"), _pod("worker", "0", "Succeeded")]
    assert judge(jobs, pods, "chief", suspended=False).state == "Running"
    assert judge(jobs, [], "chief", suspended=False).state == "Pending"


def test_pending_suspended_and_the_pod_problem_named() -> None:
    jobs = {"worker": _job("worker", active=1)}
    assert judge(jobs, [], "worker", suspended=True).state == "Suspended"
    pulling = _pod(
        "worker",
        "0",
        phase="Pending",
        containerStatuses=[
            {
                "name": "tensorflow",
                "state": {"waiting": {"reason": "ErrImagePull", "message": "no"}},
            }
        ],
    )
    verdict = judge(jobs, [pulling], "worker", suspended=False)
    assert verdict.state == "Pending"
    assert verdict.reason != "Pending"


def test_replica_statuses_count_per_role() -> None:
    jobs = {"worker": _job("worker", active=2, succeeded=1), "ps": _job("ps", active=1)}
    assert replica_statuses(jobs) == {
        "worker": {"active": 2, "succeeded": 1, "failed": 0},
        "ps": {"active": 1, "succeeded": 0, "failed": 0},
    }


def test_the_exporter_is_the_newest_index_0_pod_of_its_role() -> None:
    old = _pod("worker", "0", created="2026-01-01T00:00:00Z")
    new = _pod("worker", "0", created="2026-01-01T00:05:00Z")
    other = _pod("worker", "1", created="2026-01-01T00:09:00Z")
    assert exporter_pod([new, other, old], "worker", "modelship.dev/replica-type") is new
    assert exporter_pod([other], "worker", "modelship.dev/replica-type") is None


def test_progress_from_metrics_keeps_only_finite_numbers() -> None:
    text = "\n".join(
        [
            "# TYPE modelship_training_step gauge",
            "modelship_training_step 420",
            "modelship_training_total_steps 1000",
            "modelship_training_epoch 3",
            "modelship_training_loss 0.25",
            'modelship_training_metric{name="accuracy"} 0.9',
            'modelship_training_metric{name="bad"} NaN',
            "other_metric 5",
        ]
    )
    assert from_metrics_text(text) == {
        "step": 420,
        "totalSteps": 1000,
        "epoch": 3,
        "loss": 0.25,
        "metrics": {"accuracy": 0.9},
        "percent": 42,
    }


def test_termination_message_gives_the_export_and_final_progress() -> None:
    report = from_termination_message(
        '{"exportedModelUri": "s3://m/d/7", "progress": {"step": 10, "totalSteps": 10}}'
    )
    assert report.exported_model_uri == "s3://m/d/7"
    assert report.progress["percent"] == 100
    assert from_termination_message("Traceback (most recent call last)").exported_model_uri is None
    assert from_termination_message('["not", "an", "object"]').progress == {}
    done = _pod(
        "chief",
        "0",
        phase="Succeeded",
        containerStatuses=[
            {"name": "tensorflow", "state": {"terminated": {"exitCode": 0, "message": "{}"}}}
        ],
    )
    assert termination_message(done, "tensorflow") == "{}"
    assert termination_message(done, "other") is None


def test_an_unreachable_exporter_gives_no_progress() -> None:
    def refuse(url: str, timeout: float) -> str:
        raise ConnectionRefusedError(url)

    assert ProgressProber(fetch=refuse).read("127.0.0.9", 9400) is None
    seen: list[str] = []

    def answer(url: str, timeout: float) -> str:
        seen.append(url)
        return "modelship_training_step 5\n"

    assert ProgressProber(fetch=answer).read("fd00::1", 9400) == {"step": 5}
    assert seen == ["http://[fd00::1]:9400/metrics"]


def test_an_exporter_that_counted_nothing_yet_leaves_progress_as_it_was() -> None:
    # A restarted chief serves its gauges at 0 before it restores its checkpoint.
    def zeros(url: str, timeout: float) -> str:
        return "modelship_training_step 0\nmodelship_training_total_steps 0\n"

    assert ProgressProber(fetch=zeros).read("127.0.0.9", 9400) is None

    def started(url: str, timeout: float) -> str:
        return "modelship_training_step 0\nmodelship_training_total_steps 1000\n"

    assert ProgressProber(fetch=started).read("127.0.0.9", 9400) == {
        "step": 0,
        "totalSteps": 1000,
        "percent": 0,
    }
