"""A kubelet for pods whose images are under `kwok.external/`, which kwok leaves alone.

It runs what such a pod describes as real processes on this machine: each init container to
completion, then the model server, listening on a loopback address of its own that becomes the
pod's IP. Volumes are folders, Secrets referenced by `envFrom` become environment variables, and
what happened is written into the pod's status the way a kubelet reports it. So the operator,
`modelship fetch`, the model server and the clients all meet for real; only the container
runtime is replaced by subprocesses.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from modelship_localcluster.cluster import LocalCluster

EXTERNAL = "kwok.external/"
BIN = Path(sys.executable).parent
# What each image would run: its entrypoint, or the programs its commands name.
ENTRYPOINTS = {"kwok.external/model-server": [str(BIN / "modelship-server")]}
PROGRAMS = {"modelship": str(BIN / "modelship"), "modelship-server": str(BIN / "modelship-server")}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _image_name(image: str) -> str:
    return image.rsplit(":", 1)[0]


class ExternalKubelet:
    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self._cluster = cluster
        self._workdir = workdir
        self._started: set[str] = set()
        self._servers: list[subprocess.Popen[bytes]] = []
        self._next_address = 2

    def sync(self, namespace: str) -> None:
        """Start every scheduled external pod of the namespace not started yet."""
        pods = json.loads(
            self._cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout
        )["items"]
        for pod in pods:
            uid = pod["metadata"]["uid"]
            images = [c["image"] for c in pod["spec"]["containers"]]
            if uid in self._started or not pod["spec"].get("nodeName"):
                continue
            if not all(image.startswith(EXTERNAL) for image in images):
                continue
            self._started.add(uid)
            self._run(pod)

    def stop(self) -> None:
        for server in self._servers:
            server.terminate()
        for server in self._servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    # ---- one pod ---------------------------------------------------------------------------

    def _run(self, pod: dict[str, Any]) -> None:
        root = self._workdir / pod["metadata"]["uid"]
        volumes = self._volumes(pod, root)
        for init in pod["spec"].get("initContainers", []):
            log = root / f"{init['name']}.termination-log"
            argv = self._argv(init, volumes, pod)
            if Path(argv[0]).name == "modelship":
                # The kubelet mounts /dev/termination-log; here it is a file of the pod's folder.
                argv.append(f"--termination-log={log}")
            done = subprocess.run(
                argv,
                env=self._env(init, pod),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            (root / f"{init['name']}.log").write_text(done.stdout + done.stderr)
            if done.returncode != 0:
                message = log.read_text() if log.exists() else done.stderr[-1024:]
                self._report_init_failure(pod, init, done.returncode, message)
                return
        address = f"127.0.77.{self._next_address}"
        self._next_address += 1
        (server,) = pod["spec"]["containers"]
        argv = [*self._argv(server, volumes, pod), f"--host={address}"]
        with (root / f"{server['name']}.log").open("wb") as out:
            process = subprocess.Popen(
                argv, env=self._env(server, pod), stdout=out, stderr=subprocess.STDOUT
            )
        self._servers.append(process)
        self._wait_ready(address, process, root / f"{server['name']}.log")
        self._report_running(pod, address)

    def _get(self, kind: str, name: str, pod: dict[str, Any]) -> dict[str, Any]:
        out = self._cluster.kubectl(
            "get", kind, name, "-n", pod["metadata"]["namespace"], "-o", "json"
        ).stdout
        obj: dict[str, Any] = json.loads(out)
        return obj

    def _volumes(self, pod: dict[str, Any], root: Path) -> dict[str, Path]:
        folders = {}
        for volume in pod["spec"].get("volumes", []):
            folder = root / "volumes" / volume["name"]
            folder.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                config = self._get("configmap", volume["configMap"]["name"], pod)
                for key, value in config.get("data", {}).items():
                    (folder / key).write_text(value)
            folders[volume["name"]] = folder
        return folders

    def _argv(
        self, container: dict[str, Any], volumes: dict[str, Path], pod: dict[str, Any]
    ) -> list[str]:
        command = container.get("command") or ENTRYPOINTS[_image_name(container["image"])]
        argv = [PROGRAMS.get(command[0], command[0]), *command[1:], *container.get("args", [])]
        # Mount paths in the arguments become the volumes' folders, longest first (/mnt/models
        # before /mnt); the program itself is a path of this machine and is left alone.
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))

        def local(path: str) -> str:
            for mount in mounts:
                root = mount["mountPath"]
                if path == root or path.startswith(root + "/"):
                    folder = volumes[mount["name"]] / mount.get("subPath", "")
                    return str(folder) + path[len(root) :]
            return path

        def mapped(arg: str) -> str:
            if arg.startswith("--") and "=" in arg:
                flag, value = arg.split("=", 1)
                return f"{flag}={local(value)}"
            return local(arg)

        return [argv[0], *(mapped(arg) for arg in argv[1:])]

    def _env(self, container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
        env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(self._workdir)}
        for source in container.get("envFrom", []):
            secret = self._get("secret", source["secretRef"]["name"], pod)
            for key, value in secret.get("data", {}).items():
                env[key] = base64.b64decode(value).decode()
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
        return env

    @staticmethod
    def _wait_ready(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"model server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://{address}:8501/v2/health/ready", timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"model server at {address} never became ready: {log.read_text()}")

    # ---- status, as a kubelet reports it ------------------------------------------------------

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        self._cluster.kubectl(
            "patch",
            "pod",
            pod["metadata"]["name"],
            "-n",
            pod["metadata"]["namespace"],
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    def _report_init_failure(
        self, pod: dict[str, Any], init: dict[str, Any], code: int, message: str
    ) -> None:
        now = _now()
        self._patch_status(
            pod,
            {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {
                        "type": "Initialized",
                        "status": "False",
                        "reason": "ContainersNotInitialized",
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "ContainersNotReady",
                        "lastTransitionTime": now,
                    },
                ],
                "initContainerStatuses": [
                    {
                        "name": init["name"],
                        "image": init["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": code,
                                "reason": "Error",
                                "message": message,
                                "startedAt": now,
                                "finishedAt": now,
                            }
                        },
                    }
                ],
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "PodInitializing"}},
                    }
                    for c in pod["spec"]["containers"]
                ],
            },
        )

    def _report_running(self, pod: dict[str, Any], address: str) -> None:
        now = _now()
        conditions = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        self._patch_status(
            pod,
            {
                "phase": "Running",
                "podIP": address,
                "podIPs": [{"ip": address}],
                "startTime": now,
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": now} for t in conditions
                ],
                "initContainerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": now,
                                "finishedAt": now,
                            }
                        },
                    }
                    for c in pod["spec"].get("initContainers", [])
                ],
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in pod["spec"]["containers"]
                ],
            },
        )
