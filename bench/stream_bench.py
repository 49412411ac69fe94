"""Token-by-token streaming: how soon the first token reaches a client, and what it costs.

A loopback OpenAI-compatible teacher produces a 40-piece answer at one piece every
25 ms (a 1 s answer; asked without ``stream`` it answers whole after the same 1 s).
The gateway (cold start: every request is the teacher's) is asked through the official
``openai`` SDK:

- ``first_chunk_ms`` / ``whole_ms``: sequential requests with ``stream=True``: when the
  first piece of text arrives, and the whole answer; ``unstreamed_ms``: the same request
  without ``stream`` (the time a client waited for its first byte before streaming).
- ``cpu_ms_per_request``: ``--concurrency`` requests at once, streamed and unstreamed,
  read by a raw HTTP client, process CPU (``time.process_time``) per request. Teacher,
  gateway and client share this one process, so the difference between the two rows is
  the streaming cost of all three (a chunk event per piece, 40 here, written by the
  teacher, parsed and re-written by the gateway, read by the client).

Writes bench/results/stream.json and stream.md.
Run: ``.venv/bin/python bench/stream_bench.py [--requests 20] [--concurrency 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb  # the sibling script, found by the path above

from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app

PIECES, GAP_S = 40, 0.025
ANSWER = json.dumps({"label": "login " + "x" * 200})
RESULTS = Path(__file__).resolve().parent / "results"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "t",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


async def teacher(request: web.Request) -> web.StreamResponse:
    """A slow teacher: PIECES pieces GAP_S apart, streamed or (after as long) whole."""
    body = await request.json()
    usage = {"prompt_tokens": 50, "completion_tokens": PIECES, "total_tokens": 50 + PIECES}
    size = -(-len(ANSWER) // PIECES)
    if not body.get("stream"):
        await asyncio.sleep(PIECES * GAP_S)
        message = {"role": "assistant", "content": ANSWER}
        return web.json_response({"id": "c", "object": "chat.completion", "created": 0,
                                  "model": "t", "usage": usage, "choices": [
                                      {"index": 0, "message": message, "finish_reason": "stop"}]})  # fmt: skip
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(_chunk({"role": "assistant", "content": ""}))
    for i in range(0, len(ANSWER), size):
        await asyncio.sleep(GAP_S)
        await resp.write(_chunk({"content": ANSWER[i : i + size]}))
    end = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "t",
           "choices": [], "usage": usage}  # fmt: skip
    await resp.write(_chunk({}, "stop") + f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
    await resp.write_eof()
    return resp


def write_config(directory: Path, teacher_url: str) -> Path:
    cfg = {
        "tasks": [{"name": gb.TASK, "input_schema": {"text": "str"},
                   "output_schema": {"label": "str"}, "evaluator": "exact_match"}],
        "remote": {"provider": "openai_compatible", "model": "t", "base_url": teacher_url,
                   "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}, "timeout_s": 30},
        "local": {"model_dir": str(directory / "models")},
        "store": {"url": f"sqlite:///{directory}/apprentice.db"},
        "gateway": {"max_concurrency": 4096, "orchestrator": "operator"},
    }  # fmt: skip
    path = directory / "apprentice.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def one(sdk: openai.AsyncOpenAI, i: int, stream: bool) -> tuple[float, float]:
    """(seconds to the first piece of text, seconds to the whole answer)."""
    messages: Any = [{"role": "user", "content": json.dumps({"text": f"ticket {i} cannot log in"})}]
    started = time.perf_counter()
    if not stream:
        await sdk.chat.completions.create(model=gb.TASK, messages=messages)
        done = time.perf_counter() - started
        return done, done
    first = 0.0
    async for chunk in await sdk.chat.completions.create(
        model=gb.TASK, messages=messages, stream=True
    ):
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def cpu_per_request(url: str, concurrency: int) -> dict[str, float]:
    """Process CPU ms per request, ``concurrency`` at once, read by a raw HTTP client (the
    SDK's per-chunk parsing would dwarf the gateway's share)."""
    cpu = {}
    async with aiohttp.ClientSession() as http:

        async def ask(i: int, stream: bool) -> None:
            content = json.dumps({"text": f"ticket {i} cannot log in"})
            body = {"model": gb.TASK, "stream": stream,
                    "messages": [{"role": "user", "content": content}]}  # fmt: skip
            async with http.post(url, json=body) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()

        for name, stream in (("streamed", True), ("unstreamed", False)):
            base = 20_000 if stream else 30_000
            before = time.process_time()
            await asyncio.gather(*(ask(base + i, stream) for i in range(concurrency)))
            cpu[name] = (time.process_time() - before) / concurrency * 1000
    return cpu


async def run(requests: int, concurrency: int) -> dict[str, Any]:
    fake = web.Application()
    fake.router.add_post("/v1/chat/completions", teacher)
    teacher_server = TestServer(fake, host="127.0.0.1")
    await teacher_server.start_server()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp), str(teacher_server.make_url("/v1")))
        async with Apprentice.from_config(
            cfg, student_factory=lambda _t: gb.InstantStudent()
        ) as app:
            server = TestServer(build_app(app.gateway), host="127.0.0.1")
            await server.start_server()
            sdk = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="x")
            streamed = [await one(sdk, i, True) for i in range(requests)]
            whole = [await one(sdk, 10_000 + i, False) for i in range(requests)]
            cpu = await cpu_per_request(str(server.make_url("/v1/chat/completions")), concurrency)
            await sdk.close()
            await server.close()
    await teacher_server.close()
    return {
        "first_chunk_ms": round(statistics.median(f for f, _ in streamed) * 1000, 1),
        "whole_ms": round(statistics.median(w for _, w in streamed) * 1000, 1),
        "unstreamed_ms": round(statistics.median(w for _, w in whole) * 1000, 1),
        "cpu_ms_per_request": {k: round(v, 2) for k, v in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    got = asyncio.run(run(args.requests, args.concurrency))
    got.update(
        teacher={"pieces": PIECES, "gap_ms": GAP_S * 1000},
        requests=args.requests, concurrency=args.concurrency,
        load_average=[round(x, 2) for x in os.getloadavg()], python=platform.python_version(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    (RESULTS / "stream.json").write_text(json.dumps(got, indent=2) + "\n")
    cpu = got["cpu_ms_per_request"]
    (RESULTS / "stream.md").write_text(
        "# Streaming (bench/stream_bench.py)\n\n"
        f"A teacher streaming {PIECES} pieces {GAP_S * 1000:g} ms apart, through the gateway "
        f"and the openai SDK, medians of {args.requests} sequential requests "
        f"(load average {got['load_average']}):\n\n"
        "| | ms |\n|---|---|\n"
        f"| first piece of text, stream=True | {got['first_chunk_ms']} |\n"
        f"| whole answer, stream=True | {got['whole_ms']} |\n"
        f"| whole answer (first byte), unstreamed | {got['unstreamed_ms']} |\n\n"
        f"CPU per request, {args.concurrency} at once, teacher + gateway + client in one "
        f"process: streamed {cpu['streamed']} ms, unstreamed {cpu['unstreamed']} ms (the "
        "difference is the cost of a chunk event per piece).\n"
    )
    print(json.dumps(got, indent=2))


if __name__ == "__main__":
    main()
