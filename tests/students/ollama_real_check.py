"""Run the same Ollama requests against a real ``ollama serve`` and the loopback fake (not pytest).

The fake (``fakes.ollama``) must accept and refuse what real Ollama does. Ollama is
a Go binary from outside the package registries, so CI cannot have it; this script
is how the fake was checked by hand (results in ``bench/results/backends.md``)::

    OLLAMA_BIN=/path/to/ollama TINY_GGUF=/path/to/tiny.gguf \\
        .venv/bin/python tests/students/ollama_real_check.py

``TINY_GGUF`` is a small Llama GGUF (the real server creates the base model from it:
no registry is reachable). For each request it prints ``real`` and ``fake`` status
codes and exits 1 if they differ; then it promotes a version through
:class:`~apprentice.students.ollama.OllamaStudent` on the real server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aiohttp.test_utils import TestServer

from apprentice import config
from apprentice.students import ollama
from apprentice.students.base import StudentError, VersionRef
from fakes.lora import write_peft_adapter
from fakes.ollama import OllamaServer


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def probe(url: str, gguf: bytes, adapter: Path) -> list[tuple[str, int, str]]:
    """The requests both servers get, in order; (what, status, error text)."""
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    cfg = (adapter / "adapter_config.json").read_bytes()
    out: list[tuple[str, int, str]] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:

        async def note(what: str, r: httpx.Response) -> None:
            text = r.text[:160].replace("\n", " ")
            out.append((what, r.status_code, text))

        await note("HEAD unknown blob", await http.head(f"/api/blobs/{digest(weights)}"))
        await note(
            "POST blob, wrong digest",
            await http.post(f"/api/blobs/sha256:{'0' * 64}", content=weights),
        )
        await note(
            "POST blob, bad digest format", await http.post("/api/blobs/md5:x", content=b"x")
        )
        for name, data in (("gguf", gguf), ("weights", weights), ("config", cfg)):
            await note(
                f"POST blob {name}", await http.post(f"/api/blobs/{digest(data)}", content=data)
            )
        await note("POST blob again", await http.post(f"/api/blobs/{digest(cfg)}", content=cfg))
        await note("HEAD known blob", await http.head(f"/api/blobs/{digest(weights)}"))

        async def create(what: str, body: dict[str, Any]) -> None:
            await note(what, await http.post("/api/create", content=json.dumps(body)))

        await create(
            "create base from GGUF",
            {"model": "tiny", "files": {"tiny.gguf": digest(gguf)}, "stream": False},
        )
        await create("create: neither from nor files", {"model": "x", "stream": False})
        await create(
            "create: adapter without adapter_config.json",
            {
                "model": "x",
                "from": "tiny",
                "adapters": {"adapter_model.safetensors": digest(weights)},
                "stream": False,
            },
        )
        await create(
            "create: adapter blob never uploaded",
            {
                "model": "x",
                "from": "tiny",
                "stream": False,
                "adapters": {
                    "adapter_model.safetensors": digest(weights),
                    "adapter_config.json": "sha256:" + "a" * 64,
                },
            },
        )
        await create(
            "create: empty adapter digest",
            {"model": "x", "from": "tiny", "adapters": {"a.gguf": ""}, "stream": False},
        )
        await create(
            "create: from + adapter",
            {
                "model": "apprentice-t:v1",
                "from": "tiny",
                "stream": False,
                "adapters": {
                    "adapter_model.safetensors": digest(weights),
                    "adapter_config.json": digest(cfg),
                },
            },
        )
        await note("tags", await http.get("/api/tags"))
        await note(
            "DELETE unknown",
            await http.request("DELETE", "/api/delete", content=json.dumps({"model": "nope"})),
        )
        await note(
            "DELETE created",
            await http.request(
                "DELETE", "/api/delete", content=json.dumps({"model": "apprentice-t:v1"})
            ),
        )
    return out


async def compare(url: str, gguf: bytes, adapter: Path) -> bool:
    """Probe the real server and the fake; print both; promote through OllamaStudent."""
    async with httpx.AsyncClient() as http:
        print("real ollama", (await http.get(f"{url}/api/version")).json())
    real = await probe(url, gguf, adapter)
    fake_server = OllamaServer(models={})
    app = TestServer(fake_server.app(), host="127.0.0.1")
    await app.start_server()
    try:
        fake = await probe(f"http://127.0.0.1:{app.port}", gguf, adapter)
    finally:
        await app.close()
    same = True
    for (what, rs, rt), (_, fs, ft) in zip(real, fake, strict=True):
        flag = "" if rs == fs else "   <-- DIFFERS"
        same &= rs == fs
        print(f"{what:45s} real {rs} fake {fs}{flag}\n    real: {rt}\n    fake: {ft}")
    local = config.LocalConfig(
        backend="ollama", base_url=url, base_model="llama3.1:8b", serve_base="tiny"
    )
    student = ollama.OllamaStudent(local, task="t")
    try:
        await student.load_version(VersionRef("v2", str(adapter)))
        print("OllamaStudent promoted v2 on the real server:", student.active_version())
    except StudentError as exc:
        print(f"OllamaStudent.load_version on the real server: {type(exc).__name__}: {exc}")
    async with httpx.AsyncClient() as http:
        tags = (await http.get(f"{url}/api/tags")).json()["models"]
    print("real server models after promotion:", sorted(m["name"] for m in tags))
    await student.aclose()
    return same


def main() -> int:
    binary = os.environ["OLLAMA_BIN"]
    gguf = Path(os.environ["TINY_GGUF"]).read_bytes()
    tmp = Path(tempfile.mkdtemp())
    adapter = write_peft_adapter(tmp / "v1", hidden=128, rank=8, alpha=16)
    port = _port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(tmp / "models")}
    with (tmp / "serve.log").open("w") as log:
        server = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/api/version", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        return 0 if asyncio.run(compare(url, gguf, adapter)) else 1
    finally:
        server.terminate()
        server.wait(timeout=10)
        print("server log:", tmp / "serve.log")


if __name__ == "__main__":
    sys.exit(main())
