"""A small async Kubernetes API client: get, list, create, server-side apply, merge-patch, delete.

kopf watches and patches the objects it handles; this client is for everything else the
operator touches (children, TrainingJobs, ModelVersions, Secrets). It speaks plain REST
over httpx with the same credentials kopf logged in with, so tests point both at one
emulator. Only this module and kopf talk to the Kubernetes API.

Errors (raised ``from`` the transport error where there is one)::

    KubeError                 any failed call; .status, .reason
     +-- NotFound             404
     +-- Conflict             409 (already exists, or a stale resourceVersion)
     +-- KubeUnavailable      429, 5xx, timeouts, refused connections: retry later
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "CONFIG_MAPS",
    "DEPLOYMENTS",
    "DISTILLED_TASKS",
    "EVENTS",
    "JOBS",
    "MODEL_VERSIONS",
    "PODS",
    "PVCS",
    "SECRETS",
    "SERVICES",
    "TRAINING_JOBS",
    "ApiResource",
    "Conflict",
    "KubeClient",
    "KubeError",
    "KubeUnavailable",
    "NamespaceTerminating",
    "NotFound",
    "resource_for",
]

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
#: The field manager of every server-side apply the operator makes.
FIELD_MANAGER = "apprentice"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """A Kubernetes API call failed; the message carries the server's reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class KubeUnavailable(KubeError):
    pass


class NamespaceTerminating(KubeUnavailable):
    """403 from NamespaceLifecycle: the namespace is being deleted, not a missing grant.

    Temporary (retried with backoff) until the namespace and the object go away; a
    permanent failure would log the same refusal on every poll.
    """


@dataclass(frozen=True)
class ApiResource:
    """A resource's REST coordinates."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        url = f"{base}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            url += f"/{name}"
            if sub is not None:
                url += f"/{sub}"
        return url


CONFIG_MAPS = ApiResource("", "v1", "configmaps", "ConfigMap")
SECRETS = ApiResource("", "v1", "secrets", "Secret")
SERVICES = ApiResource("", "v1", "services", "Service")
PVCS = ApiResource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
EVENTS = ApiResource("", "v1", "events", "Event")
PODS = ApiResource("", "v1", "pods", "Pod")
DEPLOYMENTS = ApiResource("apps", "v1", "deployments", "Deployment")
JOBS = ApiResource("batch", "v1", "jobs", "Job")
DISTILLED_TASKS = ApiResource("apprentice.dev", "v1alpha1", "distilledtasks", "DistilledTask")
TRAINING_JOBS = ApiResource("apprentice.dev", "v1alpha1", "trainingjobs", "TrainingJob")
MODEL_VERSIONS = ApiResource("apprentice.dev", "v1alpha1", "modelversions", "ModelVersion")

_BY_KIND = {
    r.kind: r
    for r in (
        CONFIG_MAPS,
        SECRETS,
        SERVICES,
        PVCS,
        PODS,
        EVENTS,
        DEPLOYMENTS,
        JOBS,
        DISTILLED_TASKS,
        TRAINING_JOBS,
        MODEL_VERSIONS,
    )
}


def resource_for(manifest: Obj) -> ApiResource:
    """The resource of a manifest, by its kind."""
    try:
        return _BY_KIND[manifest["kind"]]
    except KeyError as exc:
        raise ValueError(f"no REST coordinates known for kind {manifest.get('kind')!r}") from exc


class KubeClient:
    """Async REST client; one per operator process, closed on cleanup."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        token_path: Path | None = None,
        ca_path: str | None = None,
        insecure: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        verify: ssl.SSLContext | bool = True
        if insecure:
            verify = False
        elif ca_path:
            verify = ssl.create_default_context(cafile=ca_path)
        self._token = token
        self._token_path = token_path  # re-read per call: projected tokens rotate
        self._http = httpx.AsyncClient(
            base_url=server.rstrip("/"), verify=verify, timeout=timeout_s, transport=transport
        )

    def __repr__(self) -> str:  # never show the token
        return f"KubeClient({str(self._http.base_url)!r})"

    @classmethod
    def in_cluster(cls) -> KubeClient:
        """The pod's service account: the API server's env, token file and CA."""
        import os

        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return cls(
            f"https://{host}:{port}", token_path=SA_DIR / "token", ca_path=str(SA_DIR / "ca.crt")
        )

    def _headers(self) -> dict[str, str]:
        token = self._token
        if self._token_path is not None:
            token = self._token_path.read_text(encoding="utf-8").strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> Obj:
        headers = self._headers()
        if content_type:
            headers["Content-Type"] = content_type
        try:
            if json is not None and content_type:
                import json as jsonlib

                resp = await self._http.request(
                    method, url, content=jsonlib.dumps(json), headers=headers, params=params
                )
            else:
                resp = await self._http.request(
                    method, url, json=json, headers=headers, params=params
                )
        except httpx.TransportError as exc:
            raise KubeUnavailable(0, type(exc).__name__, f"{method} {url}: {exc}") from exc
        if resp.status_code < 400:
            data: Obj = resp.json() if resp.content else {}
            return data
        try:
            body = resp.json()
        except ValueError:
            body = {}
        reason = str(body.get("reason") or resp.reason_phrase)
        message = f"{method} {url}: {body.get('message') or resp.text[:200]}"
        status = resp.status_code
        if status == 404:
            raise NotFound(status, reason, message)
        if status == 409:
            raise Conflict(status, reason, message)
        if status == 429 or status >= 500:
            raise KubeUnavailable(status, reason, message)
        causes = (body.get("details") or {}).get("causes") or []
        if status == 403 and any(c.get("reason") == "NamespaceTerminating" for c in causes):
            raise NamespaceTerminating(status, reason, message)
        raise KubeError(status, reason, message)

    async def get(self, res: ApiResource, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self._call("GET", res.path(namespace, name))
        except NotFound:
            return None

    async def list(
        self, res: ApiResource, namespace: str, labels: dict[str, str] | None = None
    ) -> list[Obj]:
        params = (
            {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        )
        data = await self._call("GET", res.path(namespace), params=params)
        items: list[Obj] = data.get("items") or []
        if labels:  # servers (and emulators) that ignore the selector are filtered here
            items = [i for i in items if _has_labels(i, labels)]
        return items

    async def create(self, namespace: str, body: Obj) -> Obj:
        return await self._call("POST", resource_for(body).path(namespace), json=body)

    async def patch(
        self, res: ApiResource, namespace: str, name: str, patch: Obj, *, status: bool = False
    ) -> Obj:
        """JSON merge patch (RFC 7386); ``status=True`` targets the status subresource."""
        url = res.path(namespace, name, "status" if status else None)
        return await self._call("PATCH", url, json=patch, content_type=MERGE_PATCH)

    async def apply(
        self, manifest: Obj, *, field_manager: str = FIELD_MANAGER, status: bool = False
    ) -> Obj:
        """Server-side apply (``force``): the server owns the merge, and fields this manager
        set before but left out now are removed. ``status=True`` applies the status only."""
        meta = manifest["metadata"]
        url = resource_for(manifest).path(
            meta["namespace"], meta["name"], "status" if status else None
        )
        params = {"fieldManager": field_manager, "force": "true"}
        return await self._call(
            "PATCH", url, json=manifest, params=params, content_type=APPLY_PATCH
        )

    async def served(self, group_version: str) -> set[str]:
        """The resource names (plurals and subresources) the server serves in one
        group/version; empty when it serves none of them (404)."""
        try:
            data = await self._call("GET", f"/apis/{group_version}")
        except NotFound:
            return set()
        return {str(r.get("name")) for r in data.get("resources") or []}

    async def delete(self, res: ApiResource, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call("DELETE", res.path(namespace, name))

    async def aclose(self) -> None:
        await self._http.aclose()


def _has_labels(obj: Obj, labels: dict[str, str]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())
