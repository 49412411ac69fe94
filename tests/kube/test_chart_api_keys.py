"""API keys in Kubernetes: on by default in the chart, off by default elsewhere, and a
DistilledTask may say otherwise; the operator reads /state with the task's admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from chart_support import env_of, helm_binary, render
from kube_samples import classify

from apprentice.kube.gateway_client import GatewayClient
from apprentice.kube.manifests import TaskObject, build_gateway_config
from apprentice.kube.runtime import settings_from_env


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


def _required(env: dict[str, str], **gateway: Any) -> bool:
    defaults = settings_from_env(env).defaults
    body = classify(gateway=gateway) if gateway else classify()
    config = build_gateway_config(TaskObject.from_body(body, defaults))
    return bool(config["gateway"]["require_api_keys"])


def test_the_chart_turns_keys_on_and_a_task_can_turn_them_off(helm: Path, tmp_path: Path) -> None:
    env = env_of(render(helm, tmp_path, {}))
    assert env["APPRENTICE_REQUIRE_API_KEYS"] == "true"
    assert _required(env) is True
    assert _required(env, requireApiKeys=False) is False
    off = env_of(render(helm, tmp_path, {"gateway": {"requireApiKeys": False}}))
    assert off["APPRENTICE_REQUIRE_API_KEYS"] == "false"
    assert _required(off) is False and _required(off, requireApiKeys=True) is True
    assert _required({}) is False  # an operator started without the chart: the laptop default


async def test_the_operator_reads_state_with_the_admin_token() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"task": "classify"})

    token = "tok-" + "x" * 20  # built at run time: no key-like literal in the repository
    transport = httpx.MockTransport(answer)
    async with GatewayClient("http://gw", "classify", token, transport=transport) as client:
        assert await client.state() == {"task": "classify"}
    async with GatewayClient("http://gw", "classify", None, transport=transport) as client:
        await client.state()
    assert seen == [f"Bearer {token}", None]
