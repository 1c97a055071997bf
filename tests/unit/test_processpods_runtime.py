"""Back-off, restart decisions, probe thresholds, pod addresses and container environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_localcluster.processpods.backoff import Backoff
from modelship_localcluster.processpods.ipam import AddressesExhaustedError, AddressPool
from modelship_localcluster.processpods.probes import ProbeTiming, ProbeTracker
from modelship_localcluster.processpods.runs import ContainerRun, restarts
from modelship_localcluster.processpods.spec import ConfigError, PodFacts, container_env, expand
from modelship_localcluster.processpods.status import Running, Terminated, Waiting


def test_backoff_doubles_from_its_base_up_to_its_cap() -> None:
    backoff = Backoff(10, 300)
    assert [backoff.delay(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.delay(0) == 0
    assert not backoff.resets_after(599)
    assert backoff.resets_after(600)


def test_restart_policy_decisions() -> None:
    assert restarts("Always", init=False, exit_code=0)
    assert not restarts("OnFailure", init=False, exit_code=0)
    assert restarts("OnFailure", init=False, exit_code=2)
    assert not restarts("Never", init=False, exit_code=2)
    assert restarts("Always", init=True, exit_code=1)
    assert not restarts("Always", init=True, exit_code=0)
    assert not restarts("Never", init=True, exit_code=1)


def test_a_crash_backs_off_and_the_next_start_counts_as_a_restart() -> None:
    run = ContainerRun({"name": "app", "image": "i"}, init=False)
    run.ran_before = True
    ended = Terminated(3, "Error", "", 100.0, 101.0)
    run.mark_exited(ended, restart_policy="Always", backoff=Backoff(1, 4), now=50.0, pod="p_ns")
    assert isinstance(run.state, Waiting)
    assert run.state.reason == "CrashLoopBackOff"
    assert run.last == ended
    assert run.next_start == 51.0
    assert run.restart_count == 0
    run.mark_exited(ended, restart_policy="Always", backoff=Backoff(1, 4), now=60.0, pod="p_ns")
    assert run.next_start == 62.0


def test_takeover_counts_a_lost_running_process_as_an_exit() -> None:
    run = ContainerRun({"name": "app", "image": "i"}, init=False)
    reported = {
        "restartCount": 2,
        "containerID": "process://77",
        "state": {"running": {"startedAt": "2027-01-15T08:00:00Z"}},
    }
    run.seed(reported, now=1_900_000_000.0, restart_policy="Always")
    assert run.ran_before
    assert run.last is not None
    assert run.last.pid == 77
    assert run.last.exit_code == 137
    assert run.restart_count == 2
    assert not isinstance(run.state, Running)


def test_probe_thresholds_decide_and_only_a_crossing_flips_the_result() -> None:
    tracker = ProbeTracker(ProbeTiming(initial_delay=5, period=2, failure_threshold=2), 0.0)
    assert not tracker.due(4.9)
    assert tracker.due(5.0)
    assert tracker.record(ok=True, now=5.0) is True
    assert not tracker.due(6.0)
    assert tracker.record(ok=False, now=7.0) is True
    assert tracker.record(ok=False, now=9.0) is False
    assert ProbeTiming.of({"periodSeconds": 1}).failure_threshold == 3


def test_addresses_are_unique_skip_dot_0_and_255_and_are_released() -> None:
    pool = AddressPool("127.77.0.0/23")
    held = {pool.allocate(f"uid-{i}") for i in range(508)}
    assert len(held) == 508
    assert not any(a.endswith((".0", ".255")) for a in held)
    with pytest.raises(AddressesExhaustedError):
        pool.allocate("one-more")
    pool.release("uid-3")
    assert pool.allocate("one-more") == "127.77.0.4"
    assert pool.allocate("one-more") == "127.77.0.4"


def test_a_pod_keeps_its_address_and_avoids_other_nodes_ones() -> None:
    pool = AddressPool("127.77.0.0/24")
    assert pool.allocate("a", preferred="127.77.0.9") == "127.77.0.9"
    assert pool.allocate("b", preferred="127.77.0.9") == "127.77.0.1"
    assert pool.allocate("c", elsewhere={"127.77.0.2"}) == "127.77.0.3"


FACTS = PodFacts("web", "team", "u1", "process-0", "127.77.0.5", "127.0.0.1", "default", {}, {})


def test_environment_from_values_references_fields_secrets_and_config_maps(tmp_path: Path) -> None:
    objects = {("secrets", "creds"): {"TOKEN": "t"}, ("configmaps", "cfg"): {"mode": "fast"}}
    container = {
        "envFrom": [
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "cfg"}, "prefix": "C_"},
        ],
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "URL", "value": "http://$(IP):8501/$$(IP)"},
        ],
    }
    env = container_env(
        container,
        FACTS,
        home=tmp_path,
        tmp_dir=tmp_path / "tmp",
        lookup=lambda k, n: objects.get((k, n)),
    )
    assert env["TOKEN"] == "t"
    assert env["C_mode"] == "fast"
    assert env["MODE"] == "fast"
    assert env["URL"] == "http://127.77.0.5:8501/$(IP)"
    assert env["HOME"] == str(tmp_path)
    assert env["TMPDIR"] == str(tmp_path / "tmp")
    assert env["PATH"].split(":")[0].endswith("bin")
    assert expand("$(NOPE)", {}) == "$(NOPE)"


def test_missing_secret_is_a_config_error_unless_optional(tmp_path: Path) -> None:
    key_ref: dict[str, object] = {"name": "gone", "key": "k"}
    ref = {"name": "X", "valueFrom": {"secretKeyRef": key_ref}}
    with pytest.raises(ConfigError, match='secret "gone" not found'):
        container_env({"env": [ref]}, FACTS, home=tmp_path, tmp_dir=None, lookup=lambda k, n: None)
    key_ref["optional"] = True
    env = container_env(
        {"env": [ref]}, FACTS, home=tmp_path, tmp_dir=None, lookup=lambda k, n: None
    )
    assert "X" not in env
