"""Shared fixtures: markers by folder, and one real local control plane per test session."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_helpers import POD_SECURITY_LABELS
from modelship_localcluster import product
from modelship_localcluster.cli import install_admission, install_crds
from modelship_localcluster.cluster import LocalCluster
from storage_helpers import S3Server
from storage_servers import s3_server_in

ROOT = Path(__file__).resolve().parent.parent
MARKER_BY_FOLDER = {"unit": "unit", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's folder names its marker, so `-m unit` and friends need no decorators."""
    for item in items:
        folder = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if folder in MARKER_BY_FOLDER:
            item.add_marker(MARKER_BY_FOLDER[folder])


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """The whole local cluster, as `make up` starts it: the control plane (etcd, apiserver,
    controller-manager, scheduler), kwok's fake nodes, the process node's kubelet, the service
    proxy (`cluster.proxy_url`), Prometheus (`cluster.prometheus_url`) and the model store
    (Secret `local-model-store` in `default`; `cluster.model_store_secret(ns)` for others)."""
    root = ROOT / ".cluster" / "pytest"
    root.parent.mkdir(exist_ok=True)
    # One test session per checkout owns .cluster/pytest: a second one would stop the first's
    # cluster below (it looks stale) and both would fail in confusing ways. The lock goes with
    # the process, so a crashed run leaves nothing that blocks the next.
    lock = (root.parent / "pytest.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pytest.exit(
            "another test session in this checkout is using .cluster/pytest; wait for it, or "
            "run from a copy of the checkout",
            returncode=3,
        )
    if root.exists():
        stale = LocalCluster.attach(root)
        if stale:
            stale.stop()
        shutil.rmtree(root)
    local = LocalCluster(root=root)
    local.start()
    # `default` is a test namespace too (some tests use it): restricted, like the others.
    labels = [f"{key}={value}" for key, value in POD_SECURITY_LABELS.items()]
    local.kubectl("label", "namespace", "default", "--overwrite", *labels)
    yield local
    # Logs stay in .cluster/pytest/logs for a look after a failed run.
    local.stop()
    lock.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 API (versitygw) on loopback, with the test credentials of storage_helpers."""
    with s3_server_in(tmp_path_factory.mktemp("versitygw")) as server:
        yield server


@pytest.fixture(scope="session")
def crds_installed(cluster: LocalCluster) -> LocalCluster:
    """The CRDs, and the admission policies the CRDs' own rules cannot express, in effect:
    `install_admission` returns once a request over its limit is refused in each kind."""
    install_crds(cluster, ROOT / "crds")
    install_admission(cluster, ROOT / "admission")
    return cluster


@pytest.fixture(scope="session")
def operator(crds_installed: LocalCluster) -> LocalCluster:
    """The cluster with modelship installed from its chart and the operator running, as the
    chart's ServiceAccount. A short resync so tests also see the periodic pass do nothing."""
    product.install_chart(crds_installed, ROOT / "charts" / "modelship")
    product.start_operator(crds_installed, "--resync-seconds=15")
    return crds_installed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A failing test that used the cluster shows the tail of every component log."""
    report = yield
    args = getattr(item, "funcargs", {})
    local = args.get("cluster") or args.get("crds_installed") or args.get("operator")
    if report.failed and isinstance(local, LocalCluster):  # type: ignore[attr-defined]
        report.sections.append(("control-plane logs", local.log_tails(lines=40)))  # type: ignore[attr-defined]
    return report
