"""Per-request tags over HTTP: OpenAI's ``metadata`` (chat and task API) and the
``X-Apprentice-Tags`` header are stored with the request and exported with the example."""

from __future__ import annotations

import json
from typing import Any

import gw_rules
import openai


async def test_tags_are_stored_and_exported(
    harness_factory: Any, admin_env: dict[str, str]
) -> None:
    h = await harness_factory()
    client = await h.serve()
    inp = gw_rules.make_input(1)
    body = {"input": inp, "metadata": {"customer": "acme", "plan": "pro"}}
    headers = {"X-Apprentice-Tags": "team=billing, plan=free"}
    resp = await client.post("/v1/tasks/classify", json=body, headers=headers)
    assert resp.status == 200
    rid = (await resp.json())["request_id"]
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    done = await sdk.chat.completions.create(
        model="classify",
        messages=[{"role": "user", "content": json.dumps(gw_rules.make_input(2))}],
        metadata={"customer": "globex"},
    )
    await sdk.close()
    await h.gw.flush()
    by_id = {r.id: r.tags for r in h.gw.store.requests("classify")}
    # The body wins over the header key by key.
    assert by_id[rid] == {"customer": "acme", "plan": "pro", "team": "billing"}
    assert by_id[done.id.removeprefix("chatcmpl-")] == {"customer": "globex"}

    rows = []
    for split in ("train", "heldout"):
        resp = await client.get(
            f"/admin/tasks/classify/dataset?split={split}&metadata=true", headers=admin_env
        )
        rows += [json.loads(line) for line in (await resp.text()).splitlines()]
    tags = {r["metadata"]["request_id"]: r["metadata"]["tags"] for r in rows}
    assert tags[rid]["customer"] == "acme"


async def test_bad_tags_are_400s_naming_the_problem(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    inp = gw_rules.make_input(3)

    async def bad(body: dict[str, Any], words: str, headers: dict[str, str] | None = None) -> None:
        resp = await client.post("/v1/tasks/classify", json=body, headers=headers)
        assert resp.status == 400, await resp.text()
        message = (await resp.json())["error"]["message"]
        assert words in message, message

    await bad({"input": inp, "metadata": {"n": 5}}, "metadata.n")
    await bad({"input": inp, "metadata": {f"k{i}": "v" for i in range(17)}}, "at most 16")
    await bad({"input": inp, "metadata": {"k" * 65: "v"}}, "at most 64 characters")
    await bad({"input": inp, "metadata": {"k": "v" * 513}}, "at most 512 characters")
    many = ", ".join(f"h{i}=v" for i in range(10))
    body = {"input": inp, "metadata": {f"k{i}": "v" for i in range(10)}}
    await bad(body, "20 tags, at most 16", {"X-Apprentice-Tags": many})
    await bad({"input": inp}, "is not key=value", {"X-Apprentice-Tags": "customer"})
    assert h.gw.store.request_counts("classify").requests == 0


async def test_spend_grouped_by_a_tag(harness_factory: Any, admin_env: dict[str, str]) -> None:
    h = await harness_factory()
    client = await h.serve()
    for i, customer in enumerate(["acme", "acme", "globex", None]):
        body: dict[str, Any] = {"input": gw_rules.make_input(i)}
        if customer:
            body["metadata"] = {"customer": customer}
        assert (await client.post("/v1/tasks/classify", json=body)).status == 200
    url = "/admin/tasks/classify/spend?tag=customer"
    report = await (await client.get(url, headers=admin_env)).json()
    groups = {g["value"]: g for g in report["groups"]}
    assert set(groups) == {"acme", "globex", None}
    assert groups["acme"]["requests"] == 2 and groups["acme"]["teacher_calls"] == 2
    rows = h.gw.store.requests("classify")
    assert groups["acme"]["spend"] == sum(r.cost for r in rows if r.tags.get("customer") == "acme")
    assert report["groups"][0]["value"] == "acme"  # most spend first
    early = await client.get(url + "&since=2020-01-01T00:00:00Z", headers=admin_env)
    assert sum(g["requests"] for g in (await early.json())["groups"]) == 4

    async def bad(query: str, status: int, words: str) -> None:
        resp = await client.get(f"/admin/tasks/classify/spend{query}", headers=admin_env)
        assert resp.status == status
        assert words in (await resp.json())["error"]["message"]

    await bad("", 400, "tag is required")
    await bad("?tag=customer&since=yesterday", 400, "since must be an ISO 8601 time")
    resp = await client.get("/admin/tasks/nope/spend?tag=customer", headers=admin_env)
    assert resp.status == 404
    assert (await client.get(url)).status == 401
