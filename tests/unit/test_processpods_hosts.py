"""Process pods' names (the node's hosts file), the mount that shows it as /etc/hosts, and the
preloaded bind() that keeps each pod's wildcard listeners on its own address."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from modelship_localcluster.processpods import bindshim
from modelship_localcluster.processpods.hosts import HostsFile, PodName, pod_name, render
from modelship_localcluster.processpods.sandbox import Sandbox, mount_prefix, mount_problem

BASE = "127.0.0.1\tlocalhost\n"


def pod(hostname: str | None, subdomain: str | None, namespace: str = "ns") -> dict[str, object]:
    spec = {k: v for k, v in (("hostname", hostname), ("subdomain", subdomain)) if v}
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_a_pod_has_a_name_only_with_hostname_and_subdomain() -> None:
    assert pod_name(pod("tj-worker-0", "tj"), "127.77.0.5") == PodName(
        "ns", "tj-worker-0", "tj", "127.77.0.5"
    )
    assert pod_name(pod("tj-worker-0", None), "127.77.0.5") is None
    assert pod_name(pod(None, "tj"), "127.77.0.5") is None
    name = pod_name(pod("a", "b", "c"), "127.77.0.5")
    assert name is not None
    assert name.names == ("a.b.c.svc", "a.b.c.svc.cluster.local")


def test_render_keeps_the_machine_lines_and_the_newest_owner_of_a_name() -> None:
    old = PodName("ns", "tj-worker-0", "tj", "127.77.0.5")
    other = PodName("ns", "tj-worker-1", "tj", "127.77.0.6")
    new = PodName("ns", "tj-worker-0", "tj", "127.77.0.7")
    text = render(BASE, [old, other, new])
    assert text.startswith(BASE)
    lines = text.splitlines()
    assert "127.77.0.7\ttj-worker-0.tj.ns.svc tj-worker-0.tj.ns.svc.cluster.local" in lines
    assert "127.77.0.6\ttj-worker-1.tj.ns.svc tj-worker-1.tj.ns.svc.cluster.local" in lines
    assert not any(line.startswith("127.77.0.5") for line in lines)


def test_hosts_file_is_rewritten_in_its_inode(tmp_path: Path) -> None:
    hosts = HostsFile(tmp_path / "hosts", BASE)
    inode = os.stat(hosts.path).st_ino
    hosts.publish("uid-1", PodName("ns", "w-0", "tj", "127.77.0.5"))
    hosts.publish("uid-2", PodName("ns", "w-1", "tj", "127.77.0.6"))
    assert "w-0.tj.ns.svc" in hosts.path.read_text()
    hosts.withdraw("uid-1")
    text = hosts.path.read_text()
    assert "w-0.tj.ns.svc" not in text
    assert "w-1.tj.ns.svc" in text
    assert text == hosts.text()
    # Shrinking leaves no tail of the longer content behind.
    hosts.withdraw("uid-2")
    assert "127.77.0.6" not in hosts.path.read_text()
    assert os.stat(hosts.path).st_ino == inode


def test_preload_env_puts_the_shim_first_and_names_the_pod_address() -> None:
    env = bindshim.preload_env({"LD_PRELOAD": "/x/own.so", "A": "1"}, Path("/s/shim.so"), "1.2.3.4")
    assert env == {
        "LD_PRELOAD": "/s/shim.so /x/own.so",
        "A": "1",
        bindshim.POD_IP_ENV: "1.2.3.4",
    }
    assert bindshim.preload_env({}, Path("/s/shim.so"), "1.2.3.4")["LD_PRELOAD"] == "/s/shim.so"


def test_without_mount_or_shim_a_container_runs_as_given() -> None:
    sandbox = Sandbox()
    assert sandbox.command(["/bin/prog", "a"]) == ["/bin/prog", "a"]
    assert sandbox.environment({"A": "1"}, "127.77.0.5") == {"A": "1"}


def test_mount_problem_reports_why_a_mount_is_not_possible(tmp_path: Path) -> None:
    problem = mount_problem(["/bin/sh", "-c", "echo not allowed >&2; exit 1"], tmp_path / "h")
    assert problem == "not allowed"
    assert mount_problem(["/nonexistent/unshare"], tmp_path / "h")


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_a_container_sees_the_hosts_file_as_etc_hosts_with_later_pods(tmp_path: Path) -> None:
    sandbox = Sandbox.prepare(tmp_path)
    assert sandbox.hosts is not None
    assert sandbox.prefix, "unshare and mount should work as root"
    lookup = (
        "import socket, sys; sys.stdin.readline(); "
        "print(socket.gethostbyname('w-0.tj.ns.svc.cluster.local'))"
    )
    # Started before the pod is known: the file is updated in place under the mount.
    container = subprocess.Popen(
        sandbox.command([sys.executable, "-c", lookup]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    sandbox.hosts.publish("uid-1", PodName("ns", "w-0", "tj", "127.77.0.5"))
    out, _ = container.communicate("go\n", timeout=30)
    assert container.returncode == 0
    assert out.strip() == "127.77.0.5"
    # The machine's own /etc/hosts is untouched.
    assert "w-0.tj.ns.svc" not in Path("/etc/hosts").read_text()


LISTEN = """
import socket, sys
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
sock = socket.socket(family, socket.SOCK_STREAM)
if family == socket.AF_INET6:
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(sys.argv[2])))
print(sock.getsockname()[0])
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("family", ["4", "6"])
def test_the_shim_binds_a_wildcard_listener_to_the_pod_address(tmp_path: Path, family: str) -> None:
    shim = bindshim.build(tmp_path)
    assert shim is not None
    assert shim.exists()
    assert bindshim.build(tmp_path) == shim  # built once per source version
    port = free_port()
    env = bindshim.preload_env(dict(os.environ), shim, "127.77.254.9")
    done = subprocess.run(
        [sys.executable, "-c", LISTEN, family, str(port)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    expected = "127.77.254.9" if family == "4" else "::ffff:127.77.254.9"
    assert done.stdout.strip() == expected
    # Without the shim the same program takes the wildcard address.
    plain = subprocess.run(
        [sys.executable, "-c", LISTEN, family, str(port)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip() in ("0.0.0.0", "::")


def test_the_shim_is_not_built_without_its_source(tmp_path: Path) -> None:
    assert bindshim.build(tmp_path, tmp_path / "missing.c") is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare"),
    reason="needs root to drop to another user",
)
def test_without_root_the_mount_is_refused_with_a_reason(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(BASE)
    unshare = shutil.which("unshare")
    assert unshare is not None
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    problem = mount_problem([*as_nobody, *mount_prefix(unshare)], hosts)
    assert problem is not None
    assert "not permitted" in problem.lower()
    assert mount_problem(mount_prefix(unshare), hosts) is None
