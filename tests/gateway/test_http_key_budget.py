"""A per-key budget end to end over HTTP: the key's caps are checked in the same store
transaction as the task's and the global caps, and its spend is what the store's spend
rows charged to it say (exact across gateways and restarts)."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gw_rules
import pytest
import yaml
from gw_config import config_dict

from apprentice import cli, config

# One replay answer costs ~0.0002 USD at gpt-4o prices; its reservation (the worst case:
# prompt plus max_output_tokens) is larger. This cap admits a few teacher calls.
CAP = 0.0015


def _config(tmp_path: Path, store_url: str | None = None) -> config.ApprenticeConfig:
    d = config_dict(tmp_path, store_url=store_url)
    d["gateway"]["require_api_keys"] = True
    return config.loads(yaml.safe_dump(d))


async def _key(client: Any, admin: dict[str, str], **extra: Any) -> tuple[str, dict[str, str]]:
    body = {"tasks": ["classify"], **extra}
    resp = await client.post("/admin/keys", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["budget"] == extra.get("budget")
    return str(made["id"]), {"Authorization": f"Bearer {made['key']}"}


async def _ask(client: Any, bearer: dict[str, str], i: int) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/v1/tasks/classify", json={"input": gw_rules.make_input(i)}, headers=bearer
    )
    return resp.status, dict(await resp.json())


def _key_spend(store: Any, key_id: str) -> float:
    return math.fsum(e.amount for e in store.spend_entries("classify") if e.caller == key_id)


def _refusal(body: dict[str, Any], key_id: str) -> dict[str, Any]:
    error = dict(body["error"])
    assert error["type"] == "key_budget_exhausted", error
    assert error["docs"].endswith("#gateway-key_budget_exhausted")
    details = error["details"]
    assert details["key_id"] == key_id and details["window"] == "day" and details["cap"] == CAP
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert details["resets_at"] == f"{tomorrow.isoformat()}T00:00:00+00:00"
    assert key_id in error["message"] and "day" in error["message"]
    return dict(details)


async def test_a_key_at_its_cap_gets_429_while_another_key_is_served(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    h = await harness_factory(_config(tmp_path))
    client = await h.serve()
    small, small_auth = await _key(client, admin_env, budget={"daily": CAP})
    other, other_auth = await _key(client, admin_env)

    statuses: list[int] = []
    for i in range(12):  # phase 1 (under 20 examples): only the teacher answers
        status, body = await _ask(client, small_auth, i)
        statuses.append(status)
        if status == 429:
            details = _refusal(body, small)
            assert details["spent_or_reserved"] + details["asked"] > CAP
            break
        assert status == 200 and body["output"] == gw_rules.teacher_output(gw_rules.make_input(i))
    assert statuses[-1] == 429 and statuses.count(200) >= 2, statuses
    spent = _key_spend(h.gw.store, small)
    assert 0 < spent <= CAP
    # Every line of the key's answered requests is charged to it; the task is not capped.
    answered = {r.id for r in h.gw.store.requests("classify") if r.caller == small}
    assert {e.request_id for e in h.gw.store.spend_entries("classify") if e.caller == small} == (
        answered
    )
    for i in range(20, 23):
        status, body = await _ask(client, other_auth, i)
        assert status == 200, body
    assert _key_spend(h.gw.store, other) > 0
    status, body = await _ask(client, small_auth, 30)  # still refused, nothing more spent
    assert status == 429
    _refusal(body, small)
    assert _key_spend(h.gw.store, small) == spent
    assert h.gw.store.reservations() == []


async def test_a_key_s_spend_survives_a_gateway_restart(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    cfg = _config(tmp_path)
    first = await harness_factory(cfg)
    client = await first.serve()
    key_id, auth = await _key(client, admin_env, budget={"daily": CAP})
    i = 0
    while (await _ask(client, auth, i))[0] == 200:
        i += 1
        assert i < 15, "the key's cap never refused"
    spent = _key_spend(first.gw.store, key_id)
    await first.close()

    second = await harness_factory(cfg)  # a new gateway on the same store
    client = await second.serve()
    assert _key_spend(second.gw.store, key_id) == spent
    status, body = await _ask(client, auth, 100)
    assert status == 429
    _refusal(body, key_id)
    listed = await (await client.get("/admin/keys", headers=admin_env)).json()
    assert [k["budget"] for k in listed["keys"]] == [{"daily": CAP}]


async def test_concurrent_requests_never_spend_past_a_key_s_cap(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str], store_url: str
) -> None:
    h = await harness_factory(_config(tmp_path, store_url))
    client = await h.serve()
    key_id, auth = await _key(client, admin_env, budget={"daily": CAP})

    results = await asyncio.gather(*(_ask(client, auth, i) for i in range(30)))
    statuses = [s for s, _ in results]
    assert set(statuses) == {200, 429}, statuses
    for status, body in results:
        if status == 429:
            _refusal(body, key_id)
    spent = _key_spend(h.gw.store, key_id)
    assert 0 < spent <= CAP + 1e-12, spent
    assert len([e for e in h.gw.store.spend_entries("classify")]) == statuses.count(200)
    assert h.gw.store.reservations() == []


@pytest.mark.parametrize(
    ("budget", "problem"),
    [
        ({"daily": 0}, "budget.daily"),
        ({"weekly": -1}, "budget.weekly"),
        ({"hourly": 1}, "budget.hourly"),
        ({"monthly": "5"}, "budget.monthly"),
    ],
)
async def test_a_bad_key_budget_is_a_400_naming_it(
    harness_factory: Any,
    tmp_path: Path,
    admin_env: dict[str, str],
    budget: dict[str, float],
    problem: str,
) -> None:
    h = await harness_factory(_config(tmp_path))
    client = await h.serve()
    body = {"tasks": ["classify"], "budget": budget}
    resp = await client.post("/admin/keys", json=body, headers=admin_env)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "bad_request" and problem in error["message"], error
    assert (await (await client.get("/admin/keys", headers=admin_env)).json())["keys"] == []


async def test_cli_creates_a_key_with_a_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    base = ["keys", "create", "-c", str(path), "--task", "classify"]
    argv = [*base, "--budget", "daily=2", "--budget", "monthly=30", "--json"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["budget"] == {"daily": 2.0, "monthly": 30.0}
    assert await asyncio.to_thread(cli.main, [*base, "--budget", "daily"]) == 1
    assert "expected WINDOW=AMOUNT" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, [*base, "--budget", "yearly=5"]) == 1
    assert "budget.yearly" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, ["keys", "list", "-c", str(path)]) == 0
    assert f"{made['id']}  classify  -  daily=2,monthly=30  active" in capsys.readouterr().out
