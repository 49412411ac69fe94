"""``GET /v1/models``: the tasks as OpenAI models, read with the official ``openai`` SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gw_rules
import openai
import pytest
import yaml
from gw_config import config_dict

from apprentice import config


def two_tasks(tmp_path: Path, **gateway: Any) -> config.ApprenticeConfig:
    d = config_dict(tmp_path)
    d["tasks"].append({**d["tasks"][0], "name": "triage", "description": "Same, second task"})
    d["gateway"] = {**d["gateway"], **gateway}
    return config.loads(yaml.safe_dump(d))


async def test_models_list_and_retrieve_with_the_openai_sdk(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(two_tasks(tmp_path))
    client = await h.serve()
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    page = await sdk.models.list()
    assert [m.id for m in page.data] == ["classify", "triage"]
    assert all(m.object == "model" and m.owned_by == "apprentice" for m in page.data)
    assert all(m.created > 1_600_000_000 for m in page.data)
    one = await sdk.models.retrieve("triage")
    assert one.id == "triage"
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.models.retrieve("nope")
    body = caught.value.body
    assert isinstance(body, dict)
    # The SDK unwraps {"error": {...}}; the body names the task and those that exist.
    assert body["type"] == "unknown_task"
    assert body["details"]["tasks"] == ["classify", "triage"]

    # A model from the list is a model a chat completion accepts.
    inp = gw_rules.make_input(1)
    done = await sdk.chat.completions.create(
        model=page.data[0].id, messages=[{"role": "user", "content": json.dumps(inp)}]
    )
    assert json.loads(done.choices[0].message.content or "") == gw_rules.teacher_output(inp)
    await sdk.close()


async def test_models_are_in_the_openapi_document(harness_factory: Any, tmp_path: Path) -> None:
    h = await harness_factory(two_tasks(tmp_path))
    client = await h.serve()
    doc = await (await client.get("/openapi.json")).json()
    listed = doc["paths"]["/v1/models"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"]["properties"]["data"]["items"] == {
        "$ref": "#/components/schemas/Model"
    }
    one = doc["paths"]["/v1/models/{model}"]["get"]
    assert one["parameters"][0]["schema"]["enum"] == ["classify", "triage"]
    assert set(one["responses"]) >= {"200", "401", "403", "404"}
