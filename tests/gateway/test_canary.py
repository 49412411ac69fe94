"""The canary (issue 13 item 7), end to end over HTTP: a validated candidate tried on live
steady-state traffic, promoted when it matches the active version, rolled back with an
alert when it does worse, routed by request id; shadow mode never serves its answer.

The active v1 answers like the teacher (``first_word``). A candidate v2 is registered,
validated and promoted through the admin API, as the Kubernetes operator does; the
held-out examples are the inputs whose first and last words agree, so a ``last_word``
candidate passes validation there and still does worse on live traffic (1 in 4).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import pytest
import yaml
from gw_config import config_dict, make_config

from apprentice import cli, config
from apprentice.engine import canary as rule
from apprentice.engine import lifecycle
from apprentice.reporting import snapshot
from apprentice.store import open_store, records

CANARY = {"share": 0.5, "min_comparisons": 12, "max_comparisons": 24, "sampling_rate": 1.0}


@pytest.fixture
def harness_factory(harness_factory: Callable[..., Any]) -> Callable[..., Any]:
    """The conftest harness with request ids from a fixed sequence, one per test (a
    restarted gateway goes on counting, so stored ids stay unique).

    The canary routes by a hash of the request id, so with random ids each run splits
    the inputs differently between the versions: how many of the active version's
    mistakes it meets before the candidate's ``max_comparisons`` varies, and with
    them the verdict (about 1 run in 12 rolled back the better candidate).
    """
    numbers = itertools.count()

    def next_id() -> str:
        return f"canary-{next(numbers)}"

    async def make(*args: Any, **kwargs: Any) -> Any:
        h = await harness_factory(*args, **kwargs)
        h.gw.new_request_id = next_id
        return h

    return make


def seed(cfg: config.ApprenticeConfig, tmp_path: Path, active: str = "first_word") -> None:
    """Steady state on v1 (by default the teacher's rule), with held-out examples."""
    params = lifecycle.TaskParams.from_config(cfg, "classify")
    state = lifecycle.version_promoted(lifecycle.initial(params), "v1")
    for i in range(params.detectors.window_size):
        state, _ = lifecycle.observe(state, 1.0, index=i)
    path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / "v1", active)
    with open_store(cfg.store.url) as store:
        gw_fakes.promote_v1(store, path)
        store.save_task_state("classify", state.to_dict())
        now = datetime.now(UTC)
        heldout = []
        for i in range(0, 80, 4):  # first word == last word: both rules agree here
            inp = gw_rules.make_input(i)
            heldout.append(
                records.ExampleRecord(
                    task="classify", input=inp, output=gw_rules.teacher_output(inp),
                    input_hash=records.input_hash(inp), split="heldout",
                    teacher_provider="replay", teacher_model="replay", created_at=now, cost=0.0,
                )
            )  # fmt: skip
        store.add_examples(heldout)


async def start_canary(
    h: Any, client: Any, admin: dict[str, str], tmp_path: Path, rule_: str
) -> dict[str, Any]:
    path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / "v2", rule_)
    base = "/admin/tasks/classify/versions"
    body = {"version": "v2", "path": str(path), "metrics": {}}
    assert (await client.post(base, json=body, headers=admin)).status == 201
    verdict = await (await client.post(f"{base}/v2/validate", headers=admin)).json()
    assert verdict["passed"] is True, verdict
    resp = await client.post(f"{base}/v2/promote", headers=admin)
    assert (await resp.json()) == {"active": "v1"}  # v2 is a canary: v1 still serves
    state = await (await client.get("/v1/tasks/classify/state", headers=admin)).json()
    assert state["canary"]["version"] == "v2" and state["active_version"] == "v1"
    return state["canary"]


async def traffic(
    h: Any, client: Any, n: int, start: int = 0, *, until_verdict: bool = True
) -> list[dict[str, Any]]:
    """``n`` requests (fewer once the canary ended, with ``until_verdict``); the answers."""
    answers = []
    for i in range(start, start + n):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200
        answers.append(await resp.json())
        if until_verdict and h.gw.tasks["classify"].canary is None:
            break
    await h.gw.control.wait_for_canaries()
    await h.gw.flush()
    return answers


async def test_a_matching_candidate_takes_over_after_the_evidence(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    cfg = make_config(tmp_path, task={"canary": {"mode": "share", **CANARY}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    view = await start_canary(h, client, admin_env, tmp_path, "first_word")
    assert view["mode"] == "share" and view["candidate"]["comparisons"] == 0
    await traffic(h, client, 400)
    versions = {v.version: v for v in h.gw.store.versions("classify")}
    assert versions["v2"].state == "promoted" and versions["v1"].state == "retired"
    assert versions["v2"].metrics["canary"]["verdict"].startswith("at least the margin")
    state = await (await client.get("/v1/tasks/classify/state", headers=admin_env)).json()
    assert state["active_version"] == "v2" and "canary" not in state
    assert h.students["classify"].active_version() == "v2"  # the serving student switched
    kinds = [e.kind for e in h.gw.store.events("classify")]
    assert "canary_started" in kinds and "canary_promoted" in kinds
    # Routing is a function of the request id: each stored answer came from the version
    # the id routes to, and both versions answered.
    settled = versions["v2"].promoted_at
    assert settled is not None
    during = [
        r for r in h.gw.store.requests("classify")
        if r.student_version and versions["v2"].created_at <= r.received_at < settled
    ]  # fmt: skip
    before = {r.id: r.student_version for r in during}
    assert before and all(v == ("v2" if rule.routed(rid, 0.5) else "v1")
                          for rid, v in before.items())  # fmt: skip
    assert set(before.values()) == {"v1", "v2"}


async def test_a_worse_candidate_is_rolled_back_with_an_alert(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    cfg = make_config(tmp_path, task={"canary": {"mode": "share", **CANARY}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "last_word")
    await traffic(h, client, 400)
    v2 = h.gw.store.version("classify", "v2")
    assert v2.state == "rejected" and v2.reason.startswith("canary: worse than required")
    assert h.gw.metrics.value("apprentice_alerts_total", {"kind": "canary_rolled_back"}) == 1.0
    kinds = [e.kind for e in h.gw.store.events("classify")]
    assert "canary_rolled_back" in kinds
    state = await (await client.get("/v1/tasks/classify/state", headers=admin_env)).json()
    assert state["active_version"] == "v1" and "canary" not in state
    after = await traffic(
        h, client, 20, start=1000, until_verdict=False
    )  # v1 keeps serving, right answers
    assert len(after) == 20
    assert all(a["output"] == gw_rules.teacher_output(gw_rules.make_input(1000 + i))
               for i, a in enumerate(after))  # fmt: skip
    await h.gw.flush()
    assert {r.student_version for r in h.gw.store.requests("classify")[-20:]} == {"v1"}


async def test_shadow_mode_never_serves_the_candidates_answer(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    shadow = {**CANARY, "share": 1.0}
    cfg = make_config(tmp_path, task={"canary": {"mode": "shadow", **shadow}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "last_word")  # wrong 3 times in 4
    answers = await traffic(h, client, 200)
    served = [a["output"] for a in answers]
    expected = [gw_rules.teacher_output(gw_rules.make_input(i)) for i in range(len(answers))]
    assert len(served) >= 12 and served == expected  # never the candidate's answer
    assert h.students["classify"].calls > 0  # the active version answered the shadowed ones
    rows = h.gw.store.requests("classify")
    assert {r.student_version for r in rows if r.student_version} == {"v1"}
    v2 = h.gw.store.version("classify", "v2")
    assert v2.state == "rejected" and "worse than required" in v2.reason
    assert v2.metrics["canary"]["mode"] == "shadow"


@pytest.mark.parametrize(
    ("canary", "where", "says"),
    [
        ({"mode": "share", "share": 0.8}, "canary.share", "at most 0.5 in share mode"),
        ({"mode": "loud"}, "canary.mode", "'off', 'share' or 'shadow'"),
        ({"min_comparisons": 50, "max_comparisons": 10}, "canary.max_comparisons", "at least"),
        ({"margin": 0.9}, "canary.margin", "less than or equal to 0.5"),
    ],
)
def test_a_bad_canary_block_gets_a_clear_error(
    tmp_path: Path, canary: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(config.ConfigError) as info:
        make_config(tmp_path, task={"canary": canary})
    text = str(info.value)
    assert f"tasks[0].{where}" in text and says in text, text


async def test_a_local_run_becomes_a_canary_which_a_restart_resumes(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    """The embedded orchestrator's own run: validated, then a canary (not promoted); a
    gateway restarted meanwhile starts it again and the verdict still comes."""
    cfg = make_config(tmp_path, task={"canary": {"mode": "share", **CANARY}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg, rule="last_word")
    info = await h.gw.orchestrator.train("classify", "test")
    assert info is not None and info.version == "v2" and info.state == "candidate"
    assert info.metrics["canary"]["mode"] == "share"
    assert h.gw.tasks["classify"].canary.version == "v2"
    await h.close()
    again = await harness_factory(cfg, rule="last_word")
    assert again.gw.tasks["classify"].canary.version == "v2"  # resumed
    client = await again.serve()
    await traffic(again, client, 400)
    v2 = again.gw.store.version("classify", "v2")
    assert v2.state == "rejected" and v2.reason.startswith("canary: ")
    assert again.gw.store.active_version("classify").version == "v1"


@pytest.mark.parametrize("mode", ["share", "shadow"])
async def test_a_restarted_gateway_resumes_a_canary_with_its_evidence(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str], mode: str
) -> None:
    """Both versions' live comparisons are in the store: after a restart the canary goes
    on from the evidence it had, not from nothing."""
    slow = {**CANARY, "share": 1.0 if mode == "shadow" else 0.5}
    slow |= {"min_comparisons": 500, "max_comparisons": 500}
    cfg = make_config(tmp_path, task={"canary": {"mode": mode, **slow}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "first_word")
    await traffic(h, client, 40)
    before = h.gw.tasks["classify"].canary.view()
    assert before["candidate"]["comparisons"] > 0 and before["active"]["comparisons"] > 0
    await h.close()
    again = await harness_factory(cfg)
    resumed = again.gw.tasks["classify"].canary.view()
    assert resumed["candidate"] == before["candidate"] and resumed["active"] == before["active"]
    assert resumed["started_at"] == before["started_at"]


async def test_apprentice_status_shows_a_running_canary(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str], capsys: Any
) -> None:
    """``apprentice status`` reads the store: the canary and each version's comparisons."""
    slow = {**CANARY, "min_comparisons": 500, "max_comparisons": 500}  # no verdict yet
    over = {"task": {"canary": {"mode": "share", **slow}}}
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, **over)))
    cfg = config.load(path)
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "first_word")
    await traffic(h, client, 60)
    live = h.gw.tasks["classify"].canary.view()
    assert cli.main(["status", "-c", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["tasks"]["classify"]["canary"]
    assert shown["version"] == "v2" and shown["active_version"] == "v1"
    assert shown["candidate"] == live["candidate"] and shown["active"] == live["active"]
    assert shown["candidate"]["comparisons"] > 0 and shown["verdict"] == "continue"
    assert cli.main(["status", "-c", str(path)]) == 0
    table = capsys.readouterr().out
    assert any(line.split()[:4] == ["canary", "v2", "on", "50%"] for line in table.splitlines())


async def test_a_shadow_candidates_comparisons_are_stored_beside_the_requests(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    """The store holds a shadow candidate's scored answers too: status rebuilt from it
    shows the same tallies as the live gateway, and the candidate's answers are kept."""
    slow = {**CANARY, "share": 1.0, "min_comparisons": 500, "max_comparisons": 500}
    cfg = make_config(tmp_path, task={"canary": {"mode": "shadow", **slow}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "last_word")
    await traffic(h, client, 40)
    live = h.gw.tasks["classify"].canary.view()
    stored = snapshot.canary_from_store(cfg, h.gw.store, "classify")
    assert stored is not None and live["candidate"]["comparisons"] >= 30
    assert stored.candidate.model_dump() == live["candidate"]
    assert stored.active.model_dump() == live["active"]
    shadows = [c for c in h.gw.store.comparisons("classify") if c.student_version == "v2"]
    assert len(shadows) == live["candidate"]["comparisons"]
    assert all(c.details["source"] == "shadow" for c in shadows)
    assert all(c.details["student_output"] is not None for c in shadows)
    assert {r.student_version for r in h.gw.store.requests("classify") if r.student_version} == {
        "v1"
    }  # the requests themselves were all answered by the active version


async def test_a_candidate_that_cannot_answer_is_rolled_back_and_callers_get_answers(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    cfg = make_config(tmp_path, task={"canary": {"mode": "share", **CANARY}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "first_word")
    h.gw.tasks["classify"].canary.student.fail = True  # its server went down
    answers = await traffic(h, client, 400)
    expected = [gw_rules.teacher_output(gw_rules.make_input(i)) for i in range(len(answers))]
    assert [a["output"] for a in answers] == expected  # the teacher stood in
    v2 = h.gw.store.version("classify", "v2")
    assert v2.state == "rejected" and "agreement 0.000" in v2.reason


async def test_a_better_candidate_beats_the_margin_and_takes_over(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    """v1 is right 7 times in 8; v2 always: it must beat v1 by 0.05 live, and does."""
    cfg = make_config(tmp_path, task={"canary": {"mode": "share", **CANARY, "margin": 0.05}})
    seed(cfg, tmp_path, active="first_but_golf")
    h = await harness_factory(cfg)
    client = await h.serve()
    await start_canary(h, client, admin_env, tmp_path, "first_word")
    await traffic(h, client, 400)
    v2 = h.gw.store.version("classify", "v2")
    assert v2.state == "promoted", v2.reason
    assert h.gw.store.active_version("classify").version == "v2"
    shown = v2.metrics["canary"]["verdict"]
    assert "live agreement 1.000" in shown and "margin +0.050" in shown
