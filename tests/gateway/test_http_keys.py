"""API keys end to end over HTTP: created, listed and revoked through the admin API and
the CLI, enforced on the task API, the chat API (official ``openai`` SDK) and ``/state``."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import gw_rules
import openai
import pytest
import yaml
from gw_config import config_dict
from test_http_models import two_tasks

from apprentice import cli, config


async def _cli(*argv: str) -> int:
    """The real CLI entry point, off the test's event loop (it runs its own)."""
    return await asyncio.to_thread(cli.main, list(argv))


async def _err(resp: Any, status: int, kind: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"]["type"] == kind
    assert body["error"]["docs"].endswith(f"#gateway-{kind}")
    return dict(body["error"])


async def _create(client: Any, admin: dict[str, str], tasks: list[str]) -> dict[str, Any]:
    resp = await client.post("/admin/keys", json={"tasks": tasks, "name": "ci"}, headers=admin)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def test_keys_guard_the_task_api_and_state(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str], caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await harness_factory(two_tasks(tmp_path, require_api_keys=True))
    client = await h.serve()
    made = await _create(client, admin_env, ["classify"])
    token, key_id = made["key"], made["id"]
    assert token.startswith(f"apk_{key_id}_") and made["tasks"] == ["classify"]
    bearer = {"Authorization": f"Bearer {token}"}
    inp = {"input": gw_rules.make_input(1)}

    await _err(await client.post("/v1/tasks/classify", json=inp), 401, "api_key_missing")
    wrong = {"Authorization": f"Bearer {token[:-4]}AAAA"}
    e = await _err(await client.post("/v1/tasks/classify", json=inp, headers=wrong), 401,
                   "api_key_invalid")  # fmt: skip
    assert token[:-4] not in json.dumps(e)
    await _err(
        await client.post("/v1/tasks/classify", json=inp, headers={"Authorization": "Bearer x"}),
        401,
        "api_key_invalid",
    )
    ok = await client.post("/v1/tasks/classify", json=inp, headers=bearer)
    assert ok.status == 200 and (await ok.json())["output"] == gw_rules.teacher_output(inp["input"])
    e = await _err(await client.post("/v1/tasks/triage", json=inp, headers=bearer), 403,
                   "api_key_wrong_task")  # fmt: skip
    assert e["details"] == {"key_id": key_id, "tasks": ["classify"], "task": "triage"}

    # /state: the admin token or a key for that task; nobody else sees spend.
    await _err(await client.get("/v1/tasks/classify/state"), 401, "api_key_missing")
    await _err(await client.get("/v1/tasks/triage/state", headers=bearer), 403,
               "api_key_wrong_task")  # fmt: skip
    state = await client.get("/v1/tasks/classify/state", headers=bearer)
    assert state.status == 200 and key_id not in await state.text()
    assert (await client.get("/v1/tasks/triage/state", headers=admin_env)).status == 200
    models = await (await client.get("/v1/models", headers=bearer)).json()
    assert [m["id"] for m in models["data"]] == ["classify"]

    listed = await (await client.get("/admin/keys", headers=admin_env)).json()
    assert [k["id"] for k in listed["keys"]] == [key_id]
    assert "key" not in listed["keys"][0] and token not in json.dumps(listed)
    revoked = await client.post(f"/admin/keys/{key_id}/revoke", headers=admin_env)
    assert revoked.status == 200 and (await revoked.json())["revoked_at"]
    e = await _err(await client.post("/v1/tasks/classify", json=inp, headers=bearer), 403,
                   "api_key_revoked")  # fmt: skip
    assert e["details"] == {"key_id": key_id}

    # The token is in no log line, and the store has only its hash.
    assert all(token not in r.getMessage() for r in caplog.records)
    stored = h.gw.store.api_key(key_id)
    assert stored is not None and token not in repr(stored)


async def test_key_admin_rejects_bad_input(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    h = await harness_factory(two_tasks(tmp_path, require_api_keys=True))
    client = await h.serve()
    e = await _err(await client.post("/admin/keys", json={"tasks": ["nope"]}, headers=admin_env),
                   400, "bad_request")  # fmt: skip
    assert "'nope'" in e["message"] and "classify" in e["message"]
    e = await _err(await client.post("/admin/keys", json={"tasks": []}, headers=admin_env), 400,
                   "bad_request")  # fmt: skip
    assert "tasks" in e["message"]
    await _err(await client.post("/admin/keys", json={"tasks": ["classify"]}), 401, "unauthorized")
    e = await _err(await client.post("/admin/keys/0123456789ab/revoke", headers=admin_env), 404,
                   "not_found")  # fmt: skip
    assert "0123456789ab" in e["message"]
    await _err(await client.get("/admin/keys"), 401, "unauthorized")


async def test_a_key_s_rate_limit_is_a_429_with_retry_after(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    h = await harness_factory(two_tasks(tmp_path, require_api_keys=True))
    client = await h.serve()
    body = {"tasks": ["classify"], "rate_per_s": 0.2}  # one request, then one per 5 s
    made = await (await client.post("/admin/keys", json=body, headers=admin_env)).json()
    assert made["rate_per_s"] == 0.2
    bearer = {"Authorization": f"Bearer {made['key']}"}
    inp = {"input": gw_rules.make_input(1)}
    assert (await client.post("/v1/tasks/classify", json=inp, headers=bearer)).status == 200
    resp = await client.post("/v1/tasks/classify", json=inp, headers=bearer)
    e = await _err(resp, 429, "rate_limited")
    assert e["details"] == {"key_id": made["id"], "rate_per_s": 0.2}
    assert 1 <= int(resp.headers["Retry-After"]) <= 5
    assert h.gw.store.request_counts("classify").requests == 1  # refused before any work
    # Another key has its own bucket; bad rates are refused when the key is made.
    other = await _create(client, admin_env, ["classify"])
    ok = await client.post(
        "/v1/tasks/classify", json=inp, headers={"Authorization": f"Bearer {other['key']}"}
    )
    assert ok.status == 200
    for rate in (0, -1, "fast"):
        bad = {"tasks": ["classify"], "rate_per_s": rate}
        e = await _err(await client.post("/admin/keys", json=bad, headers=admin_env), 400,
                       "bad_request")  # fmt: skip
        assert "rate_per_s" in e["message"]


async def test_usage_per_key(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    h = await harness_factory(two_tasks(tmp_path, require_api_keys=True))
    client = await h.serve()
    a = await _create(client, admin_env, ["classify"])
    b = await _create(client, admin_env, ["classify"])
    for i, key in enumerate([a, a, b]):
        resp = await client.post(
            "/v1/tasks/classify",
            json={"input": gw_rules.make_input(i)},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
        assert resp.status == 200
    resp = await client.post(
        "/v1/tasks/classify", json={"input": gw_rules.make_input(9)}, headers=admin_env
    )
    assert resp.status == 200  # the admin token: no key
    report = await (await client.get("/admin/tasks/classify/spend/keys", headers=admin_env)).json()
    groups = {g["value"]: g for g in report["groups"]}
    assert {k: g["requests"] for k, g in groups.items()} == {a["id"]: 2, b["id"]: 1, None: 1}
    assert groups[a["id"]]["spend"] > 0 and "tag" not in report
    assert a["key"] not in json.dumps(report)
    assert (await client.get("/admin/tasks/classify/spend/keys")).status == 401


async def test_keys_are_off_by_default(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(2)})
    assert resp.status == 200
    assert (await client.get("/v1/tasks/classify/state")).status == 200


async def test_cli_keys_work_with_the_openai_sdk(
    harness_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = config_dict(tmp_path)
    d["gateway"]["require_api_keys"] = True
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(d))
    assert await _cli("keys", "create", "-c", str(path), "--task", "classify", "--json") == 0
    made = json.loads(capsys.readouterr().out)
    assert await _cli("keys", "create", "-c", str(path), "--task", "nope") == 1
    assert "nope" in capsys.readouterr().err
    assert await _cli("keys", "create", "-c", str(path), "--task", "classify", "--rate", "0") == 1
    assert "--rate must be more than 0" in capsys.readouterr().err

    h = await harness_factory(config.load(path))
    client = await h.serve()
    url = str(client.make_url("/v1"))
    sdk = openai.AsyncOpenAI(base_url=url, api_key=made["key"], max_retries=0)
    inp = gw_rules.make_input(4)
    messages: Any = [{"role": "user", "content": json.dumps(inp)}]
    done = await sdk.chat.completions.create(model="classify", messages=messages)
    assert json.loads(done.choices[0].message.content or "") == gw_rules.teacher_output(inp)
    stranger = openai.AsyncOpenAI(base_url=url, api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model="classify", messages=messages)

    assert await _cli("keys", "list", "-c", str(path)) == 0
    out = capsys.readouterr().out
    assert made["id"] in out and "active" in out and made["key"] not in out
    # Revoked by another process (the CLI) before this gateway ever read the key.
    assert await _cli("keys", "create", "-c", str(path), "--task", "classify", "--json") == 0
    other = json.loads(capsys.readouterr().out)
    assert await _cli("keys", "revoke", "-c", str(path), other["id"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert await _cli("keys", "revoke", "-c", str(path), "0123456789ab") == 1
    assert "0123456789ab" in capsys.readouterr().err
    gone = openai.AsyncOpenAI(base_url=url, api_key=other["key"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await gone.chat.completions.create(model="classify", messages=messages)
    assert caught.value.code is None or caught.value.code == "api_key_revoked"
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "api_key_revoked"
    for c in (sdk, stranger, gone):
        await c.close()
