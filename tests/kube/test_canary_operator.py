"""The operator with a task whose canary is on: the ModelVersion reflects the gateway.

The gateway decides (tests/gateway/test_canary.py); here the loopback fake answers a
promotion as a gateway with a canary does (the version stays ``candidate`` with
``metrics.canary``, the active version unchanged), then plays the verdict. The
ModelVersion stays a passed, reconciling candidate until it, then follows it. The
DistilledTask shows the running canary (``status.canary``, condition ``Canary``) from the
gateway's state, live, and drops it when the gateway's state no longer has one.
"""

from __future__ import annotations

from typing import Any

from kube_support import eventually, live
from test_operator import (
    MV,
    NAME,
    _mark_job,
    cond,
    create_and_wait_ready,
    event_reasons,
    status_of,
)

from apprentice.kube import client as k8s

TJ = "apprentice.dev/v1alpha1/trainingjobs"


async def _canary_running(emulator: Any, kube: k8s.KubeClient, fake: Any) -> None:
    fake.canary = True
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    await _mark_job(kube, f"{NAME}-v1-train", "Complete", succeeded=1)
    await eventually(lambda: "Canary" in event_reasons(emulator), what="Canary event")
    mv = status_of(emulator, MV, f"{NAME}-v1")
    assert mv["state"] == "candidate" and mv["passed"] is True and mv["heldoutScore"] == 0.93
    reconciling = [c for c in mv["conditions"] if c["type"] == "Reconciling"]
    assert reconciling and reconciling[0]["status"] == "True"


async def test_a_canary_stays_candidate_until_the_gateway_promotes_it(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await _canary_running(emulator, kube, fake)
    promotes = len([p for p in fake.paths("POST") if p.endswith("/promote")])
    fake.versions["v1"]["state"] = "promoted"  # the gateway's verdict
    await eventually(
        lambda: status_of(emulator, MV, f"{NAME}-v1").get("state") == "promoted", what="promoted"
    )
    assert len([p for p in fake.paths("POST") if p.endswith("/promote")]) == promotes
    assert len([p for p in fake.paths("POST") if p.endswith("/validate")]) == 1


async def test_a_rolled_back_canary_becomes_rejected_with_the_reason(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await _canary_running(emulator, kube, fake)
    fake.versions["v1"].update(state="rejected", reason="canary: worse than required")
    await eventually(
        lambda: status_of(emulator, MV, f"{NAME}-v1").get("state") == "rejected", what="rejected"
    )
    assert status_of(emulator, MV, f"{NAME}-v1")["reason"] == "canary: worse than required"


async def test_a_running_canary_shows_in_the_task_status_live_and_goes_when_it_ends(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    assert "canary" not in status_of(emulator) and not cond(emulator, "Canary")
    await _canary_running(emulator, kube, fake)
    await eventually(lambda: "canary" in status_of(emulator), what="status.canary")
    shown = status_of(emulator)["canary"]
    assert (shown["version"], shown["mode"], shown["since"]) == (
        "v1",
        "share",
        "2026-01-01T00:00:00Z",
    )
    assert cond(emulator, "Canary")["status"] == "True"
    assert cond(emulator, "Canary")["reason"] == "CanaryRunning"
    fake.state["canary"]["candidate"] = {"comparisons": 12, "agreement": 0.75}  # live tallies
    await eventually(
        lambda: (
            status_of(emulator)["canary"]["candidate"] == {"comparisons": 12, "agreement": 0.75}
        ),
        what="the candidate's tally",
    )
    assert "0.75 over 12 comparisons" in cond(emulator, "Canary")["message"]
    fake.state.pop("canary")  # the verdict: the gateway's state has no canary any more
    fake.versions["v1"]["state"] = "promoted"
    fake.state["active_version"] = "v1"
    await eventually(lambda: "canary" not in status_of(emulator), what="status.canary gone")
    ended = cond(emulator, "Canary")
    assert (ended["status"], ended["reason"]) == ("False", "CanaryEnded")
    assert "canary v1 ended" in ended["message"]
