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
