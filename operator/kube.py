"""The one place the operator writes to the Kubernetes API: server-side apply, delete, status,
events. Blocking calls (the official client); the controller runs them in worker threads."""

from __future__ import annotations

import datetime
import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from .api.crds import GROUP, VERSION
from .resources.kinds import CHILDREN
from .resources.names import FIELD_MANAGER, ObjectRef

API_REQUESTS = Counter(
    "modelship_operator_api_requests",
    "Requests the operator sent to the Kubernetes API.",
    ["verb", "resource"],
)

# kind → (API prefix, plural) for every kind the operator writes.
_PATHS = {
    **{child.kind: (child.api_prefix, child.plural) for child in CHILDREN},
    "ModelDeployment": (f"/apis/{GROUP}/{VERSION}", "modeldeployments"),
    "TrainingJob": (f"/apis/{GROUP}/{VERSION}", "trainingjobs"),
    "Event": ("/api/v1", "events"),
}
COMPONENT = "modelship-operator"


def object_path(kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = _PATHS[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def load_client_config(pool_size: int = 32) -> client.ApiClient:
    """In a pod: the service account. Elsewhere: $KUBECONFIG or ~/.kube/config. `pool_size`
    should cover every thread that sends requests at once: urllib3 opens a connection beyond
    the pool when all are busy and closes it after one request (a TLS handshake each time)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # Many reconciles run at once; the default pool of 4 connections would serialise them.
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


class KubeApi:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._client = api_client

    def _call(
        self,
        method: str,
        kind: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        verb = "apply" if "apply-patch" in content_type else method.lower()
        API_REQUESTS.labels(verb, kind).inc()
        serialized = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*serialized, _request_timeout=30)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        parsed: dict[str, Any] = json.loads(data) if data else {}
        return parsed

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply under our field manager; we own what we set, nothing else."""
        meta = obj["metadata"]
        return self._call(
            "PATCH",
            obj["kind"],
            object_path(obj["kind"], meta["namespace"], meta["name"]),
            obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def delete(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        try:
            self._call(
                "DELETE",
                obj["kind"],
                object_path(obj["kind"], meta["namespace"], meta["name"]),
                {"propagationPolicy": "Background"}
                | ({"preconditions": {"uid": meta["uid"]}} if meta.get("uid") else {}),
            )
        except ApiException as err:
            if err.status not in (404, 409):  # gone already, or replaced by a newer object
                raise

    def apply_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": ref.kind,
            "metadata": {"name": ref.name, "namespace": ref.namespace},
            "status": status,
        }
        self._call(
            "PATCH",
            f"{ref.kind}/status",
            object_path(ref.kind, ref.namespace, ref.name) + "/status",
            body,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call("POST", "Event", object_path("Event", ref.namespace), body)
