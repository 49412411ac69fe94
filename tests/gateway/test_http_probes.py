"""Adversarial bodies and headers over real HTTP: each is a 4xx that names the problem.

Every probe here once answered 500 (or a 502 blamed on the teacher); the gateway
must refuse it at the boundary, store nothing and pay nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from gw_config import ADMIN_TOKEN, make_config

from apprentice.gateway import errors


async def _error(resp: Any, status: int, *words: str) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    body = json.loads(text)
    assert set(body) == {"error"}
    for word in words:
        assert word in body["error"]["message"], body
    return dict(body["error"])


async def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """One request written byte for byte (no client library to clean it up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()  # Connection: close below: read to EOF
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


HUGE_INT = b'{"input": {"text": 1' + b"9" * 5000 + b"}}"
DEEP = b'{"input": {"text": "a", "x": ' + b"[" * 990 + b"]" * 990 + b"}}"
SHALLOWER_BUT_TOO_DEEP = b'{"input": {"text": "a", "x": ' + b"[" * 100 + b"]" * 100 + b"}}"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (HUGE_INT, ["4300 digits"]),
        (DEEP, ["nested", "64"]),
        (SHALLOWER_BUT_TOO_DEEP, ["nested deeper than 64"]),
        (b'{"input": {"text": NaN}}', ["NaN is not valid JSON"]),
        (b'{"input": {"text": -Infinity}}', ["-Infinity is not valid JSON"]),
        (b'{"input": {"text": 1e400}}', ["too large for a 64-bit float"]),
        (b'{"input": {"text": "a\\ud800b"}}', ["input.text", "lone UTF-16 surrogate", "d800"]),
        (b'{"input": {"\\udfff": "a"}}', ["lone UTF-16 surrogate"]),
        (b'{"input": {"text": "\xff"}}', ["not UTF-8"]),
        (b'{"input": "text"}', ["input: Input should be a valid dictionary"]),
        (b"[1, 2]", ["must be a JSON object"]),
    ],
    ids=["huge-int", "deep-990", "deep-100", "nan", "infinity", "float-overflow",
         "lone-surrogate", "surrogate-key", "not-utf8", "input-not-object", "array"],
)  # fmt: skip
async def test_bad_task_bodies_are_400(harness_factory: Any, raw: bytes, words: list[str]) -> None:
    h = await harness_factory()
    client = await h.serve()
    headers = {"Content-Type": "application/json"}
    resp = await client.post("/v1/tasks/classify", data=raw, headers=headers)
    await _error(resp, 400, *words)
    await h.gw.flush()
    assert h.gw.store.request_counts("classify").requests == 0  # nothing stored or paid


async def test_a_valid_surrogate_pair_is_accepted(harness_factory: Any) -> None:
    # The pair is one character (U+1F600): only a lone half is refused.
    h = await harness_factory()
    client = await h.serve()
    raw = json.dumps({"input": {"text": "hi \U0001f600"}}).encode()  # ensure_ascii: a pair
    assert b"\\ud83d\\ude00" in raw
    resp = await client.post("/v1/tasks/classify", data=raw)
    # The replay teacher has no answer for this input: 502, but from the teacher,
    # which proves the body got past the boundary.
    body = await resp.json()
    assert body["error"]["details"]["reason"] == "BadRequest", body


async def test_gzip_bodies(harness_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    h = await harness_factory()
    client = await h.serve()
    inp = gw_rules.make_input(1)
    good = gzip.compress(json.dumps({"input": inp}).encode())
    resp = await client.post("/v1/tasks/classify", data=good, headers={"Content-Encoding": "gzip"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["output"] == gw_rules.teacher_output(inp)
    resp = await client.post(
        "/v1/tasks/classify",
        data=json.dumps({"input": inp}).encode(),
        headers={"Content-Encoding": "gzip"},
    )
    err = await _error(resp, 400, "Content-Encoding: gzip")
    assert err["details"] == {"content_encoding": "gzip"}
    # A client's broken body is not a server error: no traceback in the log.
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


async def test_chat_content_part_text_must_be_a_string(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    body = {
        "model": "classify",
        "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
    }
    resp = await client.post("/v1/chat/completions", json=body)
    err = await _error(resp, 400, "messages[0].content[0].text", "valid string")
    assert err["details"] == [
        {"path": "messages[0].content[0].text", "message": "Input should be a valid string"}
    ]
    # A lone surrogate inside the JSON text of the message is the same 400, not a 502.
    body["messages"] = [{"role": "user", "content": '{"text": "\\ud800"}'}]
    resp = await client.post("/v1/chat/completions", json=body)
    await _error(resp, 400, "messages[0].content", "lone UTF-16 surrogate")
    body["messages"] = [{"role": "user", "content": "[1]"}]
    resp = await client.post("/v1/chat/completions", json=body)
    await _error(resp, 400, "messages[0].content must be a JSON object")


async def test_non_utf8_authorization_header_is_401(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    assert client.port is not None
    request = (
        b"GET /admin/tasks/classify/versions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe" + ADMIN_TOKEN.encode() + b"\r\n"
        b"Connection: close\r\n\r\n"
    )
    status, body = await _raw(client.port, request)
    assert status == 401
    assert "not valid UTF-8" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"path": "/m/v1", "version": "v99999999999999999999"}, ["version", "pattern"]),
        ({"path": "/m/v1", "version": "v\u0661"}, ["version", "pattern"]),  # an Arabic-Indic 1
        ({"path": "/m/v1", "metrics": {"x": float("nan")}}, ["NaN is not valid JSON"]),
        ({"path": "/m/v1", "metrics": {"x": float("inf")}}, ["Infinity is not valid JSON"]),
        ({"path": ""}, ["path", "at least 1 character"]),
        ({}, ["path: Field required"]),
    ],
    ids=["version-overflow", "version-unicode-digit", "metrics-nan", "metrics-inf",
         "empty-path", "no-body-fields"],
)  # fmt: skip
async def test_bad_version_registrations_are_400(
    harness_factory: Any,
    admin_env: dict[str, str],
    tmp_path: Path,
    store_url: str,
    body: dict[str, Any],
    words: list[str],
) -> None:
    # Both stores: the overflow was SQLite's 500, the NaN PostgreSQL's.
    h = await harness_factory(make_config(tmp_path, store_url=store_url))
    client = await h.serve()
    raw = json.dumps(body).encode()  # json.dumps writes NaN / Infinity as the probes did
    resp = await client.post("/admin/tasks/classify/versions", data=raw, headers=admin_env)
    await _error(resp, 400, *words)
    versions = await client.get("/admin/tasks/classify/versions", headers=admin_env)
    assert (await versions.json())["versions"] == []


async def test_an_overlong_version_in_the_path_is_404(
    harness_factory: Any, admin_env: dict[str, str], tmp_path: Path, store_url: str
) -> None:
    h = await harness_factory(make_config(tmp_path, store_url=store_url))
    client = await h.serve()
    for action in ("validate", "promote"):
        resp = await client.post(
            f"/admin/tasks/classify/versions/v99999999999999999999/{action}", headers=admin_env
        )
        err = await _error(resp, 404, "v99999999999999999999")
        assert err["type"] == "not_found"


async def test_405_names_the_allowed_methods(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    resp = await client.get("/v1/chat/completions")
    err = await _error(resp, 405)
    assert resp.headers["Allow"] == "POST"
    assert err["details"] == {"allowed": ["POST"]}
    resp = await client.delete("/admin/tasks/classify/versions")
    await _error(resp, 405)
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "POST"}


async def test_admin_bodies_are_required_where_the_handler_needs_them(
    harness_factory: Any, admin_env: dict[str, str]
) -> None:
    h = await harness_factory()
    client = await h.serve()
    resp = await client.post("/admin/tasks/classify/training/finished", headers=admin_env)
    await _error(resp, 400, "not valid JSON")
    resp = await client.post(
        "/admin/tasks/classify/training/finished", json={"ok": 1}, headers=admin_env
    )
    await _error(resp, 400, "ok: Input should be a valid boolean")
    doc = await (await client.get("/openapi.json")).json()
    for path in ("/admin/tasks/{task}/versions", "/admin/tasks/{task}/training/finished"):
        assert doc["paths"][path]["post"]["requestBody"]["required"] is True
    assert "requestBody" not in doc["paths"]["/admin/tasks/{task}/pause"]["post"]


async def test_the_python_facade_refuses_what_http_refuses(harness_factory: Any) -> None:
    h = await harness_factory()
    with pytest.raises(errors.BadRequest, match=r"input: the string at text .*surrogate"):
        await h.app.run("classify", {"text": "a\ud800"})
    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    with pytest.raises(errors.BadRequest, match="nested deeper than 64"):
        await h.app.run("classify", {"text": "a", "x": deep})
    assert h.gw.store.request_counts("classify").requests == 0
