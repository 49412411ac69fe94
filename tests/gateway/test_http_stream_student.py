"""Steady state with ``stream=true``: a student that streams (as the HTTP students do,
tested on the wire in tests/students/test_http_students_stream.py) serves its local-only
answers token by token, through the official ``openai`` SDK; a compared request streams
the teacher's answer and is judged once it is whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import openai
import pytest
from gw_config import make_config
from test_steady import seed_steady_state

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.students.base import StudentAnswer
from apprentice.teachers.base import TextSink
from fakes.teachers import FakeTeacherServer


class StreamingRuleStudent(gw_fakes.RuleStudent):
    """Streams its answer's text: the first four characters, then the rest once ``hold``
    is set (already set: no pause)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = asyncio.Event()
        self.holding = asyncio.Event()

    async def generate_stream(
        self, task: TaskConfig, task_input: dict[str, Any], *, sink: TextSink
    ) -> StudentAnswer:
        answer = await self.generate(task, task_input)
        text = "not json" if answer.output is None else prompts.render_output(answer.output)
        sink(text[:4])
        self.holding.set()
        await self.hold.wait()
        sink(text[4:])
        return answer


async def test_a_local_only_answer_streams_from_the_student(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    seed_steady_state(cfg, tmp_path, "first_word")
    h = await harness_factory(cfg, student=StreamingRuleStudent)
    student: StreamingRuleStudent = h.students["classify"]
    client = await h.serve()
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    for i in range(200):  # until the engine routes one local-only (the others are compared)
        inp = gw_rules.make_input(i)
        messages: Any = [{"role": "user", "content": json.dumps(inp)}]
        stream = await sdk.chat.completions.create(model="classify", messages=messages, stream=True)
        got = []
        async for chunk in stream:
            got.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                break
        if student.holding.is_set():
            break
        got += [c async for c in stream]  # a compared request: the teacher's answer, whole
    else:
        raise AssertionError("the engine never routed local-only")
    assert got[-1].choices[0].delta.content == '{"la'  # the student is still generating
    student.hold.set()
    got += [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert json.loads(text) == gw_rules.teacher_output(inp)
    await h.gw.flush()
    last = h.gw.store.requests("classify")[-1]
    assert last.route == "local_only" and last.served_by == "student"
    assert last.id == got[0].id.removeprefix("chatcmpl-") and last.cost == 0.0
    await sdk.close()


async def test_a_streamed_invalid_student_answer_ends_in_an_error_the_teacher_stored(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    seed_steady_state(cfg, tmp_path, "invalid")  # v1 answers text that is not JSON
    h = await harness_factory(cfg, student=StreamingRuleStudent)
    student: StreamingRuleStudent = h.students["classify"]
    student.hold.set()
    client = await h.serve()
    for i in range(200):
        inp = gw_rules.make_input(i)
        resp = await client.post("/v1/tasks/classify", json={"input": inp, "stream": True})
        events = [json.loads(e.removeprefix("data: ")) for e in (await resp.text()).split("\n\n")
                  if e and e != "data: [DONE]"]  # fmt: skip
        if student.holding.is_set():
            break
    else:
        raise AssertionError("the engine never routed local-only")
    assert [e.get("delta") for e in events[:-1]] == ["not ", "json"]  # the student's text
    error = events[-1]["error"]  # then the verdict, and no [DONE]
    assert error["type"] == "stream_broken" and "retry without stream" in error["message"]
    await h.gw.flush()
    last = h.gw.store.requests("classify")[-1]  # the teacher stepped in: stored, as unstreamed
    assert last.served_by == "teacher" and last.error is None
    assert h.gw.store.examples("classify")[-1].output == gw_rules.teacher_output(inp)


async def test_a_compared_request_streams_the_teacher_then_judges_once(
    harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_TEST_KEY", "k-" + "stream" * 4)
    async with FakeTeacherServer("openai", answer=gw_rules.teacher_output) as fake:
        remote = {"provider": "openai_compatible", "model": "teacher-1", "base_url": fake.base_url,
                  "api_key_env": "STREAM_TEST_KEY", "price": {"input_per_mtok": 1.0,
                  "output_per_mtok": 2.0}}  # fmt: skip
        cfg = make_config(tmp_path, remote=remote)
        seed_steady_state(cfg, tmp_path, "last_word")  # v1 disagrees with the teacher
        h = await harness_factory(cfg)
        client = await h.serve()
        # until the engine samples one for comparison; i % 4 == 0 is left out: there the
        # last word is the first (make_input), so v1 would agree with the teacher
        for i in (n for n in range(400) if n % 4):
            inp = gw_rules.make_input(i)
            resp = await client.post("/v1/tasks/classify", json={"input": inp, "stream": True})
            events = [json.loads(e.removeprefix("data: ")) for e in
                      (await resp.text()).split("\n\n") if e and e != "data: [DONE]"]  # fmt: skip
            if fake.received:
                break
        else:
            raise AssertionError("the engine never sampled a comparison")
        *deltas, answer = events
        assert len(deltas) > 2 and json.loads("".join(d["delta"] for d in deltas)) == answer[
            "output"
        ] == gw_rules.teacher_output(inp)  # the teacher's answer served, token by token
        await h.gw.flush()
        (compared,) = h.gw.store.comparisons("classify")
        assert compared.request_id == answer["request_id"] and compared.score == 0.0
        (example,) = h.gw.store.examples("classify")
        assert example.request_id == answer["request_id"]
