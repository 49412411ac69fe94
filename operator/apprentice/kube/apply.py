"""Idempotent apply: create what is missing, patch what differs, leave the rest alone.

A second reconcile of an unchanged DistilledTask makes no write at all: the desired
manifest is compared with the live object first (only the fields the operator sets;
fields the API server adds are ignored), and only a real difference is merge-patched.
"""

from __future__ import annotations

from typing import Any, Literal

from apprentice.kube import client as k8s
from apprentice.kube.reconcile import differs

__all__ = ["Outcome", "apply", "desired_fields"]

Outcome = Literal["created", "patched", "unchanged"]

#: Never patched after creation: a PVC's spec is immutable, a Secret's token must not change.
_CREATE_ONLY = {"PersistentVolumeClaim", "Secret"}


def desired_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of a manifest the operator owns (what a patch may rewrite)."""
    meta = manifest.get("metadata", {})
    owned: dict[str, Any] = {
        "metadata": {k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta},
    }
    for key in ("spec", "data", "stringData"):
        if key in manifest:
            owned[key] = manifest[key]
    return owned


async def apply(kube: k8s.KubeClient, manifest: dict[str, Any]) -> Outcome:
    """Create or patch one object so that it matches ``manifest``."""
    res = k8s.resource_for(manifest)
    namespace = manifest["metadata"]["namespace"]
    name = manifest["metadata"]["name"]
    live = await kube.get(res, namespace, name)
    if live is None:
        try:
            await kube.create(namespace, manifest)
        except k8s.Conflict:  # created concurrently (e.g. by a previous, interrupted run)
            return "unchanged"
        return "created"
    if manifest["kind"] in _CREATE_ONLY:
        return "unchanged"
    owned = desired_fields(manifest)
    if not differs(owned, live):
        return "unchanged"
    await kube.patch(res, namespace, name, owned)
    return "patched"
