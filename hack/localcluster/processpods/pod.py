"""One pod's life on this node, in its own thread: address and folders, init containers one
after another, then the containers with their probes and restarts, then a graceful deletion.
Every change is reported in the pod's status."""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import images as image_map
from .backoff import Backoff
from .containers import ContainerProcess, read_termination_message
from .hosts import pod_name
from .ipam import AddressPool
from .kube import STRATEGIC_PATCH, ApiError, Kube
from .probes import ProbeError, ProbeTarget, container_ports, handler_check, run_command
from .runs import ContainerRun
from .sandbox import Sandbox
from .spec import (
    ConfigError,
    PodFacts,
    container_env,
    expand_argv,
    map_argv,
    mounts,
    termination_path,
    tmp_folder,
    volume_folders,
)
from .statefile import ProcessRecords
from .status import HOST_IP, PodReport, Terminated, exit_reason, pod_status, strategic_patch
from .volumes import prepare_volumes

log = logging.getLogger("processpods")

TICK = 0.2
CONFIG_RETRY = 5.0
REPORT_RETRY = 1.0
GONE_GRACE = 2.0
DEFAULT_GRACE = 30.0


@dataclass(frozen=True)
class NodeRuntime:
    """What every pod worker of this component shares."""

    kube: Kube
    images: Mapping[str, image_map.Image]
    addresses: AddressPool
    backoff: Backoff
    workdir: Path
    logs: Path
    records: ProcessRecords
    shutdown_grace: float = 5.0
    sandbox: Sandbox = field(default_factory=Sandbox)


def deleting(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def grace_seconds(pod: Mapping[str, Any]) -> float:
    meta, spec = pod["metadata"], pod.get("spec", {})
    for value in (
        meta.get("deletionGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
    ):
        if value is not None:
            return float(value)
    return DEFAULT_GRACE


def pod_key(pod: Mapping[str, Any]) -> str:
    return f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"


class PodWorker(threading.Thread):
    def __init__(self, runtime: NodeRuntime, pod: dict[str, Any]) -> None:
        super().__init__(name=f"pod {pod_key(pod)}", daemon=True)
        self.rt = runtime
        self.uid: str = pod["metadata"]["uid"]
        self.key = pod_key(pod)
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._gone = False
        self._shutdown = False
        self._deleting = False
        self.finished = False
        # Finished because the pod was deleted or vanished (not because of a bug).
        self.ended_cleanly = False
        spec = pod.get("spec", {})
        self.node = str(spec.get("nodeName", ""))
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or []]
        self.runs = [ContainerRun(c, init=False) for c in spec.get("containers") or []]
        self.pod_dir = runtime.workdir / "pods" / self.uid
        self.pod_ip: str | None = None
        self.start_time = time.time()
        self.init_done = not self.inits
        self.sandbox_ready = False
        self._volumes_ready = False
        self._config_retry_at = 0.0
        self._reported: dict[str, Any] | None = None
        self._report_retry_at = 0.0
        self._conditions: list[dict[str, Any]] = list(pod.get("status", {}).get("conditions") or [])
        self._last_error = ""

    # ---- from the watch ---------------------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def gone(self) -> None:
        """The pod object no longer exists: stop its containers without reporting."""
        self._gone = True
        self._wake.set()

    def shutdown(self) -> None:
        """This component is stopping: stop the containers, keep the pod for a later run."""
        self._shutdown = True
        self._wake.set()

    @property
    def pod(self) -> dict[str, Any]:
        with self._lock:
            return self._pod

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._live()
            self.ended_cleanly = not self._shutdown
        except Exception:
            log.exception("%s: pod worker failed; stopping its containers", self.key)
            self._stop_all(GONE_GRACE)
        finally:
            self.finished = True

    def _live(self) -> None:
        phase = self.pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed") or self.pod["spec"].get("nodeName") is None:
            # Nothing to run any more; only a deletion to finish.
            self._wait_for_deletion()
            return
        self._take_over()
        while True:
            pod = self.pod
            if self._gone:
                self._stop_all(GONE_GRACE)
                self._release()
                log.info("%s: pod object gone; containers stopped", self.key)
                return
            if self._shutdown:
                self._stop_all(self.rt.shutdown_grace)
                self._report(best_effort=True)
                return
            if deleting(pod):
                self._terminate()
                return
            try:
                self._step(time.monotonic())
                self._report()
            except Exception as err:  # one bad step must not end the pod's supervision
                self._note(f"{type(err).__name__}: {err}")
                log.debug("step failed", exc_info=True)
                time.sleep(REPORT_RETRY)
            self._wake.wait(TICK)
            self._wake.clear()

    def _wait_for_deletion(self) -> None:
        while not (self._gone or self._shutdown):
            pod = self.pod
            if deleting(pod):
                self._delete_object()
                return
            self._wake.wait(5)
            self._wake.clear()

    def _note(self, message: str) -> None:
        """Log a problem once, not on every tick."""
        if message != self._last_error:
            log.warning("%s: %s", self.key, message)
            self._last_error = message

    # ---- setting up ----------------------------------------------------------------------------

    def _take_over(self) -> None:
        """An address and folder; what an earlier run of this node reported is continued."""
        status = self.pod.get("status", {})
        self.pod_ip = self.rt.addresses.allocate(
            self.uid, status.get("podIP"), self._addresses_elsewhere()
        )
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        self._publish_name()
        from .runs import parse_time  # noqa: PLC0415

        self.start_time = parse_time(status.get("startTime")) or self.start_time
        now = time.time()
        reported = {s["name"]: s for s in status.get("containerStatuses") or []}
        reported_init = {s["name"]: s for s in status.get("initContainerStatuses") or []}
        initialized = any(
            c.get("type") == "Initialized" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        for run in self.runs:
            if run.name in reported:
                run.seed(reported[run.name], now=now, restart_policy=self.restart_policy)
        for init in self.inits:
            if init.name in reported_init:
                init.seed(reported_init[init.name], now=now, restart_policy=self.restart_policy)
            if not initialized:
                init.done = False
        self.init_done = initialized or not self.inits or all(i.completed for i in self.inits)
        self.sandbox_ready = True
        if reported or reported_init:
            log.info("%s: taken over at %s", self.key, self.pod_ip)
        else:
            log.info("%s: starting at %s", self.key, self.pod_ip)

    def _publish_name(self) -> None:
        name = pod_name(self.pod, self.pod_ip) if self.pod_ip else None
        if name is not None and self.rt.sandbox.hosts is not None:
            self.rt.sandbox.hosts.publish(self.uid, name)

    def _withdraw_name(self) -> None:
        if self.rt.sandbox.hosts is not None:
            self.rt.sandbox.hosts.withdraw(self.uid)

    def _addresses_elsewhere(self) -> set[str]:
        """Pod addresses in use on other nodes (best effort: the API may be down)."""
        try:
            listed = self.rt.kube.get(
                "/api/v1/pods", {"fieldSelector": f"spec.nodeName!={self.node}"}
            )
        except ApiError as err:
            self._note(f"cannot list other nodes' pods: {err}")
            return set()
        return {
            ip["ip"]
            for pod in listed.get("items") or []
            for ip in pod.get("status", {}).get("podIPs") or []
            if self.rt.addresses.usable(ip.get("ip", ""))
        }

    def _lookup(self, kind: str, name: str) -> Mapping[str, str] | None:
        namespace = self.pod["metadata"].get("namespace", "default")
        try:
            obj = self.rt.kube.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        data: dict[str, str] = {}
        if kind == "secrets":
            for key, value in (obj.get("data") or {}).items():
                data[key] = base64.b64decode(value).decode("utf-8", "surrogateescape")
        else:
            data.update(obj.get("data") or {})
            for key, value in (obj.get("binaryData") or {}).items():
                data[key] = base64.b64decode(value).decode("utf-8", "surrogateescape")
        return data

    def _token(self, audience: str | None, seconds: int) -> str:
        """A bound service account token, from the TokenRequest API as a kubelet gets it."""
        meta = self.pod["metadata"]
        account = self.pod["spec"].get("serviceAccountName") or "default"
        path = (
            f"/api/v1/namespaces/{meta.get('namespace', 'default')}/serviceaccounts/{account}/token"
        )
        spec: dict[str, Any] = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": self.uid,
            },
        }
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            answer = self.rt.kube.request("POST", path, body)
        except ApiError as err:
            raise ConfigError(f"cannot get a service account token: {err}") from None
        return str(answer.get("status", {}).get("token", ""))

    # ---- one pass ------------------------------------------------------------------------------

    def _step(self, now: float) -> None:
        if not self._volumes_ready:
            if now < self._config_retry_at:
                return
            assert self.pod_ip is not None
            try:
                prepare_volumes(
                    self.pod,
                    self._folders(),
                    self._lookup,
                    facts=PodFacts.of(self.pod, self.pod_ip, HOST_IP),
                    token=self._token,
                )
                self._volumes_ready = True
            except ConfigError as err:
                self._note(f"cannot set up volumes: {err}")
                self._config_retry_at = now + CONFIG_RETRY
                for run in [*self.inits, *self.runs]:
                    if run.process is None and not run.done:
                        run.mark_waiting("CreateContainerConfigError", str(err))
                return
        if not self.init_done:
            if any(i.done and not i.completed for i in self.inits):
                return  # failed for good (restartPolicy Never): the pod is Failed
            current = next((i for i in self.inits if not i.done), None)
            if current is not None:
                self._advance(current, now)
            if not all(i.completed for i in self.inits):
                return
            self.init_done = True
            for run in self.runs:
                run.mark_waiting("ContainerCreating", "")
        for run in self.runs:
            self._advance(run, now)

    def _folders(self) -> dict[str, Path]:
        return volume_folders(self.pod, self.pod_dir)

    def _advance(self, run: ContainerRun, now: float) -> None:
        if run.process is None:
            if run.done or now < run.next_start:
                return
            self._start(run, now)
            return
        code = run.process.poll()
        if code is not None:
            self._exited(run, code)
            return
        if not run.init:
            self._probe(run, now)

    def _start(self, run: ContainerRun, now: float) -> None:
        spec = run.spec
        try:
            image = image_map.resolve(self.rt.images, str(spec.get("image", "")))
        except image_map.ImageNotFoundError:
            message = image_map.not_pullable_message(
                str(spec.get("image")), str(self.pod["spec"].get("nodeName")), self.rt.images
            )
            self._note(message)
            run.mark_waiting("ErrImagePull", message)
            run.next_start = now + CONFIG_RETRY
            return
        assert self.pod_ip is not None
        try:
            table = mounts(spec, self._folders())
            facts = PodFacts.of(self.pod, self.pod_ip, HOST_IP)
            env = container_env(
                spec,
                facts,
                home=self.pod_dir,
                tmp_dir=tmp_folder(table),
                lookup=self._lookup,
                table=table,
            )
        except ConfigError as err:
            self._note(f"cannot configure {run.name}: {err}")
            run.mark_waiting("CreateContainerConfigError", str(err))
            run.next_start = now + CONFIG_RETRY
            return
        termination_log = self._termination_log(run)
        termination_log.parent.mkdir(parents=True, exist_ok=True)
        termination_log.write_text("")
        try:
            launch = image_map.launch(image, spec)
        except image_map.ProgramNotFoundError as err:
            wall = time.time()
            ended = Terminated(128, "StartError", str(err), wall, wall)
            run.ran_before = True
            self._exited_with(run, ended)
            return
        # The container's own arguments point into its mounts; what the node adds (the
        # termination log) is a path of this machine already, even under a mount path like /tmp.
        launch = image_map.Launch(map_argv(expand_argv(launch.argv, env), table), launch.program)
        argv = image_map.finish_argv(launch, pod_ip=self.pod_ip, termination_log=termination_log)
        workdir = spec.get("workingDir")
        cwd = Path(map_argv(["", workdir], table)[1]) if workdir else self.pod_dir
        if not cwd.is_dir():
            cwd = self.pod_dir
        process = ContainerProcess(
            self.rt.sandbox.command(argv),
            env=self.rt.sandbox.environment(env, self.pod_ip),
            cwd=cwd,
            log=self._log_file(run),
        )
        self.rt.records.add(self.uid, run.name, process.pid)
        run.mark_started(process)
        log.info(
            "%s: started %s%s (pid %d, restart %d)",
            self.key,
            "init container " if run.init else "",
            run.name,
            process.pid,
            run.restart_count,
        )

    def _termination_log(self, run: ContainerRun) -> Path:
        # The file standing in for terminationMessagePath (/dev/termination-log by default).
        stem = termination_path(run.spec).strip("/").replace("/", "_")
        path: Path = self.pod_dir / "containers" / run.name / stem
        return path

    def _log_file(self, run: ContainerRun) -> Path:
        meta = self.pod["metadata"]
        return self.rt.logs / f"{meta.get('namespace', 'default')}_{meta['name']}_{run.name}.log"

    def _ended(self, run: ContainerRun, code: int) -> Terminated:
        process = run.process
        assert process is not None
        message = read_termination_message(self._termination_log(run)).strip()
        fallback = run.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message and fallback and code != 0:
            message = process.log_tail()
        return Terminated(
            code, exit_reason(code), message, process.started, time.time(), process.pid
        )

    def _exited(self, run: ContainerRun, code: int) -> None:
        self._exited_with(run, self._ended(run, code))

    def _stopped(self, run: ContainerRun) -> None:
        """Stopped by this node (deletion, shutdown): no restart is planned from here."""
        process = run.process
        assert process is not None
        ended = self._ended(run, process.wait(10) or 0)
        self.rt.records.remove(self.uid, run.name)
        run.process = None
        run.state = ended
        run.ready = False
        run.started = False

    def _exited_with(self, run: ContainerRun, ended: Terminated) -> None:
        self.rt.records.remove(self.uid, run.name)
        run.mark_exited(
            ended,
            restart_policy=self.restart_policy,
            backoff=self.rt.backoff,
            now=time.monotonic(),
            pod=f"{self.pod['metadata']['name']}_{self.pod['metadata'].get('namespace')}",
        )
        log.info(
            "%s: %s%s exited with %d; %s",
            self.key,
            "init container " if run.init else "",
            run.name,
            ended.exit_code,
            "not restarted" if run.done else f"restart {run.restart_count + 1} after back-off",
        )

    # ---- probes ---------------------------------------------------------------------------------

    def _probe_target(self, run: ContainerRun) -> ProbeTarget:
        assert self.pod_ip is not None
        spec = run.spec
        pod_ip = self.pod_ip

        def run_exec(command: Sequence[str], timeout: float) -> int:
            try:
                image = image_map.resolve(self.rt.images, str(spec.get("image", "")))
                argv = image_map.program_argv(image, command)
                table = mounts(spec, self._folders())
                facts = PodFacts.of(self.pod, pod_ip, HOST_IP)
                env = container_env(
                    spec,
                    facts,
                    home=self.pod_dir,
                    tmp_dir=tmp_folder(table),
                    lookup=self._lookup,
                    table=table,
                )
            except (image_map.ImageNotFoundError, image_map.ProgramNotFoundError, ConfigError):
                return 127
            argv = map_argv(expand_argv(argv, env), table)
            # Run like the container itself: same /etc/hosts, same listening address.
            return run_command(
                self.rt.sandbox.command(argv),
                self.rt.sandbox.environment(env, pod_ip),
                str(self.pod_dir),
                timeout,
            )

        return ProbeTarget(host=pod_ip, ports=container_ports(spec), run_exec=run_exec)

    def _check(self, run: ContainerRun, kind: str) -> bool:
        tracker = run.probes[kind]
        try:
            return handler_check(run.spec[kind], self._probe_target(run), tracker.timing.timeout)
        except ProbeError as err:
            self._note(f"{run.name} {kind}: {err}")
            return False

    def _probe(self, run: ContainerRun, now: float) -> None:
        startup = run.probes.get("startupProbe")
        if not run.started and startup is not None:
            if startup.due(now):
                result = startup.record(self._check(run, "startupProbe"), time.monotonic())
                if result is True:
                    run.started = True
                elif result is False:
                    self._kill_unhealthy(run, "startup probe failed")
            return
        readiness = run.probes.get("readinessProbe")
        if readiness is None:
            run.ready = True
        elif readiness.due(now):
            run.ready = (
                readiness.record(self._check(run, "readinessProbe"), time.monotonic()) is True
            )
        liveness = run.probes.get("livenessProbe")
        if (
            liveness is not None
            and liveness.due(now)
            and liveness.record(self._check(run, "livenessProbe"), time.monotonic()) is False
        ):
            self._kill_unhealthy(run, "liveness probe failed")

    def _kill_unhealthy(self, run: ContainerRun, why: str) -> None:
        process = run.process
        assert process is not None
        probe = run.spec.get("livenessProbe" if "liveness" in why else "startupProbe", {})
        grace = probe.get("terminationGracePeriodSeconds")
        grace = (
            float(grace)
            if grace is not None
            else float(self.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        )
        log.info("%s: %s %s; killing it (grace %gs)", self.key, run.name, why, grace)
        run.ready = False
        self._report(best_effort=True)
        process.stop(grace)
        self._exited(run, process.poll() or 0)

    # ---- reporting ------------------------------------------------------------------------------

    def _status(self, *, final: bool = False) -> dict[str, Any]:
        policy = "Never" if final else self.restart_policy
        report = PodReport(
            restart_policy=policy,
            pod_ip=self.pod_ip,
            start_time=self.start_time,
            init_views=[i.view() for i in self.inits],
            views=[r.view(deleting=self._deleting or self._shutdown) for r in self.runs],
            init_done=self.init_done,
            sandbox_ready=self.sandbox_ready,
        )
        return pod_status(report, self._conditions, time.time())

    def _report(self, *, best_effort: bool = False, final: bool = False) -> None:
        """Patch the status subresource when it changed since the last accepted write."""
        status = self._status(final=final)
        if status["phase"] in ("Succeeded", "Failed"):
            # Out of its headless Service's endpoints: a replacement pod may take the name.
            self._withdraw_name()
        if status == self._reported:
            return
        if not best_effort and time.monotonic() < self._report_retry_at:
            return
        meta = self.pod["metadata"]
        path = f"/api/v1/namespaces/{meta.get('namespace', 'default')}/pods/{meta['name']}/status"
        body = strategic_patch(status)
        body["metadata"] = {"uid": self.uid}
        try:
            self.rt.kube.request(
                "PATCH",
                path,
                body,
                content_type=STRATEGIC_PATCH,
                timeout=2 if best_effort else 10,
            )
        except ApiError as err:
            if err.status in (404, 409):
                self._gone = True
                return
            self._report_retry_at = time.monotonic() + REPORT_RETRY
            self._note(f"status update failed: {err}")
            return
        self._reported = status
        self._conditions = status["conditions"]

    # ---- stopping --------------------------------------------------------------------------------

    def _running(self) -> list[ContainerRun]:
        return [r for r in [*self.inits, *self.runs] if r.process is not None]

    def _stop_all(self, grace: float) -> None:
        running = self._running()
        for run in running:
            assert run.process is not None
            run.process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(r.process and r.process.poll() is None for r in running):
            if time.monotonic() >= deadline:
                for run in running:
                    if run.process is not None:
                        run.process.signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        for run in running:
            if run.process is not None:
                self._stopped(run)

    def _terminate(self) -> None:
        """Graceful deletion, as the kubelet does it: not ready at once, preStop hooks, SIGTERM,
        SIGKILL when the grace period is over, then the pod object goes."""
        began = time.monotonic()
        self._deleting = True
        log.info("%s: deleting (grace %gs)", self.key, grace_seconds(self.pod))
        self._report(best_effort=True)

        def deadline() -> float:
            # A second delete may shorten the grace period.
            return began + grace_seconds(self.pod)

        running = self._running()
        stoppers = []
        for run in running:
            stopper = threading.Thread(
                target=self._pre_stop_then_term, args=(run, deadline), daemon=True
            )
            stopper.start()
            stoppers.append(stopper)
        while any(r.process and r.process.poll() is None for r in running):
            if time.monotonic() >= deadline():
                for run in running:
                    if run.process is not None and run.process.poll() is None:
                        log.info("%s: grace period over; SIGKILL %s", self.key, run.name)
                        run.process.signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        for run in running:
            if run.process is not None:
                self._stopped(run)
        self.sandbox_ready = False
        self._report(best_effort=True, final=True)
        self._delete_object()
        self._release()

    def _pre_stop_then_term(self, run: ContainerRun, deadline: Callable[[], float]) -> None:
        hook = (run.spec.get("lifecycle") or {}).get("preStop")
        if hook and not run.init:
            remaining = max(0.0, deadline() - time.monotonic())
            try:
                if "sleep" in hook:
                    seconds = float(hook["sleep"].get("seconds", 0))
                    end = time.monotonic() + min(seconds, remaining)
                    while time.monotonic() < min(end, deadline()):
                        time.sleep(0.05)
                else:
                    handler_check(hook, self._probe_target(run), remaining)
                log.info("%s: preStop of %s done", self.key, run.name)
            except Exception as err:
                self._note(f"preStop of {run.name} failed: {err}")
        if run.process is not None:
            run.process.signal(signal.SIGTERM)

    def _delete_object(self) -> None:
        meta = self.pod["metadata"]
        path = f"/api/v1/namespaces/{meta.get('namespace', 'default')}/pods/{meta['name']}"
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        for attempt in range(30):
            try:
                self.rt.kube.request("DELETE", path, body)
                break
            except ApiError as err:
                if err.status in (404, 409):
                    break
                self._note(f"delete failed (attempt {attempt + 1}): {err}")
                time.sleep(1)
        log.info("%s: deleted", self.key)

    def _release(self) -> None:
        self._withdraw_name()
        self.rt.addresses.release(self.uid)
        shutil.rmtree(self.pod_dir, ignore_errors=True)
