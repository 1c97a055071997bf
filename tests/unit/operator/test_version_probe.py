"""status.modelVersion comes from what ready model servers say they serve."""

from __future__ import annotations

from typing import Any

from modelship_operator.controller.version import VersionProber, available_versions


def _pod(ip: str, ready: bool = True) -> dict[str, Any]:
    return {
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }


def _answer(*versions: tuple[str, str]) -> dict[str, Any]:
    return {"model_version_status": [{"version": v, "state": s} for v, s in versions]}


def test_available_versions_only() -> None:
    assert available_versions(_answer(("123", "AVAILABLE"), ("124", "LOADING"))) == {123}
    assert available_versions({}) == set()


def test_asks_ready_pods_once_until_they_change() -> None:
    asked: list[str] = []

    def fetch(url: str, timeout: float) -> dict[str, Any]:
        asked.append(url)
        return _answer(("124", "AVAILABLE"))

    prober = VersionProber(fetch=fetch)
    pods = [_pod("10.0.0.2"), _pod("10.0.0.3", ready=False)]
    assert prober.served_version(("ns", "m"), "mnist", pods) == "124"
    assert asked == ["http://10.0.0.2:8501/v1/models/mnist"]
    assert prober.served_version(("ns", "m"), "mnist", pods) == "124"
    assert len(asked) == 1, "a settled object is not asked again"
    prober.served_version(("ns", "m"), "mnist", [*pods, _pod("10.0.0.4")])
    assert len(asked) == 3


def test_mixed_versions_during_a_rollout_and_unreachable_pods() -> None:
    answers = {"10.0.0.2": _answer(("123", "AVAILABLE")), "10.0.0.3": _answer(("124", "AVAILABLE"))}

    def fetch(url: str, timeout: float) -> dict[str, Any]:
        host = url.split("//")[1].split(":", maxsplit=1)[0]
        if host not in answers:
            raise ConnectionRefusedError(host)
        return answers[host]

    prober = VersionProber(fetch=fetch)
    pods = [_pod("10.0.0.2"), _pod("10.0.0.3"), _pod("10.0.0.9")]
    assert prober.served_version(("ns", "m"), "m", pods) == "123,124"
    assert prober.served_version(("ns", "x"), "m", [_pod("10.0.0.9")]) is None
