"""Level-triggered apply of a child object: server-side apply with the operator's field manager.

The whole desired manifest is sent every time (``PATCH`` with
``application/apply-patch+yaml``, ``fieldManager=apprentice``, ``force=true``): the API
server merges it, removes the fields this manager set before and no longer sets (a
``rollingUpdate`` after a switch to ``Recreate``, a dropped ``nodeSelector``), restores
hand-edited fields, recreates a deleted object, and writes nothing when nothing changed.
So re-applying on a timer is cheap, and there is no GET-then-diff race.

A PersistentVolumeClaim and a Job are created once and never re-applied: a bound claim's
spec and a Job's template are immutable, and a later spec change must not fail every
reconcile (a new training run gets a new Job).
"""

from __future__ import annotations

from typing import Any, Literal

from apprentice.kube import client as k8s

__all__ = ["Outcome", "apply"]

Outcome = Literal["applied", "unchanged"]

_CREATE_ONLY = {"PersistentVolumeClaim", "Job"}


async def apply(
    kube: k8s.KubeClient, manifest: dict[str, Any], seen: dict[str, str] | None = None
) -> Outcome:
    """Apply one object. ``seen`` (object key -> resourceVersion the last apply returned)
    tells "applied" (the object changed, or was not seen before) from "unchanged"."""
    meta = manifest["metadata"]
    key = f"{manifest['kind']}/{meta['namespace']}/{meta['name']}"
    if manifest["kind"] in _CREATE_ONLY:
        try:
            live = await kube.create(meta["namespace"], manifest)
        except k8s.Conflict:  # exists: nothing to do
            return "unchanged"
    else:
        try:
            live = await kube.apply(manifest)
        except k8s.NotFound:  # servers without server-side apply creation (emulators)
            live = await kube.create(meta["namespace"], manifest)
    version = str((live.get("metadata") or {}).get("resourceVersion") or "")
    if seen is None:
        return "applied"
    before = seen.get(key)
    seen[key] = version
    return "unchanged" if before is not None and before == version else "applied"
