"""The student servers (vLLM, llama-server, Ollama) streaming their answer:
text reaches the sink as generated, the answer is validated once whole, usage is the
server's own count."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from student_servers import LlamaCppFake, VLLMFake, serve
from test_http_students import INPUT, TASK, adapter_dir, local
from test_ollama_student import student as ollama_student

from apprentice.students import build_student
from apprentice.students.base import StreamingStudent, VersionRef
from apprentice.teachers.base import Usage
from fakes.lora import write_peft_adapter
from fakes.ollama import OllamaServer


async def test_vllm_streams_its_answer_as_it_generates(tmp_path: Path) -> None:
    fake = VLLMFake(hold=asyncio.Event())
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", f"{url}/v1"))
        assert isinstance(student, StreamingStudent)
        await student.load_version(VersionRef("v1", str(adapter_dir(tmp_path, "v1"))))
        pieces: list[str] = []
        first = asyncio.Event()

        def sink(text: str) -> None:
            pieces.append(text)
            first.set()

        call = asyncio.ensure_future(student.generate_stream(TASK, INPUT, sink=sink))
        await first.wait()  # the first piece is here while the server holds the rest
        assert fake.holding.is_set() and not call.done()
        assert fake.answer.startswith(pieces[0]) and pieces[0] != fake.answer
        assert fake.hold is not None
        fake.hold.set()
        answer = await call
        assert "".join(pieces) == fake.answer
        assert answer.output == json.loads(fake.answer) and answer.version == "v1"
        assert answer.usage == Usage(50, 20)  # the final usage chunk
        sent = fake.bodies("/v1/chat/completions")[-1]
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
        await student.aclose()


async def test_llama_cpp_streams_and_invalid_text_is_an_answer(tmp_path: Path) -> None:
    fake = LlamaCppFake(
        loading=False,
        adapters=[{"id": 0, "path": "/models/classify/v1/adapter.gguf", "scale": 0.0}],
        answer="category: billing",
    )
    async with serve(fake.app()) as url:
        student = build_student(local("llama_cpp", url))
        assert isinstance(student, StreamingStudent)
        await student.load_version(VersionRef("v1", "/models/classify/v1"))
        pieces: list[str] = []
        answer = await student.generate_stream(TASK, INPUT, sink=pieces.append)
        assert "".join(pieces) == "category: billing"
        assert answer.output is None and answer.error  # invalid, as unstreamed: no crash
        await student.aclose()


async def test_ollama_streams_its_answer_line_by_line_and_recreates_a_deleted_model(
    tmp_path: Path,
) -> None:
    fake = OllamaServer()
    adapter = write_peft_adapter(tmp_path / "v1")
    async with serve(fake.app()) as url:
        s = ollama_student(url)
        assert isinstance(s, StreamingStudent)
        await s.load_version(VersionRef("v1", str(adapter)))
        del fake.models["apprentice-classify_ticket:v1"]  # `ollama rm` behind our back
        pieces: list[str] = []
        answer = await s.generate_stream(TASK, INPUT, sink=pieces.append)
        assert len(pieces) > 2 and json.loads("".join(pieces)) == answer.output
        assert answer.output == {"category": "billing", "confidence": 0.9, "priority": 2}
        assert answer.usage == Usage(40, 20)  # prompt_eval_count, eval_count of the done line
        chat = fake.bodies("/api/chat")[-1]
        assert chat["stream"] is True and chat["format"] == TASK.output_schema
        assert "apprentice-classify_ticket:v1" in fake.models  # recreated, then asked again
        await s.aclose()
