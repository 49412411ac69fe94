"""A loopback Ollama that follows Ollama's documented API and refuses what real Ollama refuses.

Built from ``docs/api.md`` and the server's handlers (``server/routes.go``,
``server/create.go``, ``convert/convert.go``, ``manifest/paths.go``):

- ``HEAD /api/blobs/:digest``: 200 when held, 404 when not; a digest that is not
  ``sha256:<64 hex>`` is 400 ``invalid digest format``.
- ``POST /api/blobs/:digest``: 201 when stored, 200 when already held, 400
  ``digest mismatch, expected ..., got ...`` when the bytes hash otherwise (the
  bytes are kept under their true digest all the same, as Ollama does).
- ``POST /api/create``: from ``files`` (one GGUF: the base, its architecture read
  from ``general.architecture``) or ``from`` a local model; 400 without a body, with an empty adapter digest, or with
  neither ``from`` nor ``files``; 500 when ``from`` is not local (the pull fails
  offline); adapters: one GGUF file (magic ``GGUF``) or safetensors plus
  ``adapter_config.json`` (400 ``open adapter_config.json: file does not exist``), a
  blob never uploaded is 400, a base whose architecture is not llama/gemma2 is 400
  ``unsupported architecture``, an unparsable safetensors header is 400. ``stream:
  false`` answers one ``{"status": "success"}``; otherwise NDJSON progress.
- ``DELETE /api/delete``: 200, or 404 ``model '...' not found``.
- ``POST /api/chat``: 404 for an unknown model; unless ``stream: false``, the answer
  streams as Ollama's does (a JSON line per piece, then the ``done`` line with the
  counts); no messages loads the model
  (``done_reason: load``, or ``unload`` with ``keep_alive: 0``); a model in
  ``unloadable`` fails as a runner that cannot load it does (500).

What a created model answers is up to the test (``answer(model, messages)``); the
default is a fixed valid ticket classification. Each model records the adapter's
safetensors ``__metadata__``, so a stand-in trainer can tell the fake what it learnt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web

ANSWER = '{"category":"billing","confidence":0.9,"priority":2}'
_DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")


@dataclasses.dataclass
class OllamaModel:
    architecture: str
    base: str | None = None
    adapter: dict[str, str] = dataclasses.field(default_factory=dict)
    adapter_metadata: dict[str, str] = dataclasses.field(default_factory=dict)


Answer = Callable[[OllamaModel, list[dict[str, Any]]], str]


def _full(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def safetensors_header(data: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors file (u64 little-endian length, then JSON)."""
    if len(data) < 8:
        raise ValueError("file too short for a safetensors header")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError("safetensors header length exceeds the file")
    header = json.loads(data[8 : 8 + length])
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not an object")
    return header


def gguf_architecture(data: bytes) -> str:
    """``general.architecture`` when it is the first key (as gguf writers put it), else llama."""
    try:
        offset = 4 + 4 + 8 + 8  # magic, version, tensor count, key-value count
        (klen,) = struct.unpack_from("<Q", data, offset)
        key = data[offset + 8 : offset + 8 + klen].decode()
        offset += 8 + klen
        (vtype,) = struct.unpack_from("<I", data, offset)
        if key == "general.architecture" and vtype == 8:  # GGUF string
            (vlen,) = struct.unpack_from("<Q", data, offset + 4)
            return data[offset + 12 : offset + 12 + vlen].decode()
    except (struct.error, UnicodeDecodeError):
        pass
    return "llama"


@dataclasses.dataclass
class OllamaServer:
    """Models by full name (``llama3.1:8b``) -> architecture; blobs by digest."""

    models: dict[str, OllamaModel] = dataclasses.field(
        default_factory=lambda: {"llama3.1:8b": OllamaModel("llama")}
    )
    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    answer: Answer = lambda _model, _messages: ANSWER
    version: str = "0.12.6"
    #: models whose runner fails to load (an adapter that does not fit its base)
    unloadable: set[str] = dataclasses.field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/api/version", self.get_version)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_route("HEAD", "/api/blobs/{digest}", self.head_blob)
        app.router.add_post("/api/blobs/{digest}", self.post_blob)
        app.router.add_post("/api/create", self.create)
        app.router.add_delete("/api/delete", self.delete)
        app.router.add_post("/api/chat", self.chat)
        return app

    def has(self, name: str) -> bool:
        return _full(name) in self.models

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.requests if method is None or m == method]

    def bodies(self, path: str) -> list[Any]:
        return [body for _, p, body in self.requests if p == path]

    async def _json(self, request: web.Request) -> Any:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        self.requests.append((request.method, request.path, body))
        return body

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def get_version(self, request: web.Request) -> web.Response:
        await self._json(request)
        return web.json_response({"version": self.version})

    async def tags(self, request: web.Request) -> web.Response:
        await self._json(request)
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2026-11-30T07:00:00Z",
                "size": 1,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"format": "gguf", "family": m.architecture, "parent_model": ""},
            }
            for name, m in sorted(self.models.items())
        ]
        return web.json_response({"models": models})

    async def head_blob(self, request: web.Request) -> web.Response:
        self.requests.append(("HEAD", request.path, None))
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return self._error(400, "invalid digest format")
        return web.Response(status=200 if digest.replace("-", ":", 1) in self.blobs else 404)

    async def post_blob(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.requests.append(("POST", request.path, None))
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return self._error(400, "invalid digest format")
        key = digest.replace("-", ":", 1)
        if key in self.blobs:
            return web.Response(status=200)
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != key:
            self.blobs[actual] = data  # real Ollama keeps the layer under its true digest
            return self._error(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[key] = data
        return web.Response(status=201)

    def _adapter(self, base: OllamaModel, adapters: dict[str, str]) -> dict[str, str]:
        """Check an adapter as ``convertModelFromFiles(isAdapter=true)`` does; its metadata."""
        names = list(adapters)
        held = {n for n, d in adapters.items() if d.replace("-", ":", 1) in self.blobs}
        if any(n.endswith(".safetensors") for n in names):
            # Ollama links each blob into a folder (a missing one is skipped) and then
            # reads adapter_config.json, then the weights: what is absent fails there.
            for needed in (
                "adapter_config.json",
                *sorted(n for n in names if n.endswith(".safetensors")),
            ):
                if needed not in held:
                    raise _bad(f"open {needed}: no such file or directory")
            json.loads(self.blobs[adapters["adapter_config.json"].replace("-", ":", 1)])
            if base.architecture not in ("llama", "gemma2"):
                raise _bad("unsupported architecture")
            metadata: dict[str, str] = {}
            for name in names:
                if name.endswith(".safetensors"):
                    try:
                        header = safetensors_header(self.blobs[adapters[name].replace("-", ":", 1)])
                    except ValueError as exc:
                        raise _bad(f"invalid safetensors file {name}: {exc}") from None
                    if not any("lora_A" in k or "lora_a" in k for k in header):
                        raise _bad(f"{name} holds no LoRA tensors")
                    metadata.update(header.get("__metadata__") or {})
            return metadata
        if len(held) < len(adapters):
            missing = sorted(set(adapters) - held)[0]
            raise _bad(f"open {adapters[missing]}: no such file or directory")
        if not any(n.endswith(".gguf") for n in names) and not any(
            self.blobs[d.replace("-", ":", 1)][:4] == b"GGUF" for d in adapters.values()
        ):
            raise _bad("unknown type")
        if len(adapters) > 1:
            raise _bad("only one adapter is currently supported")
        if next(iter(self.blobs[d] for d in adapters.values()))[:4] != b"GGUF":
            raise _bad("supplied file was not in GGUF format")
        return {}

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        if not isinstance(body, dict):
            return self._error(400, "missing request body")
        adapters = body.get("adapters") or {}
        if any(not d for d in adapters.values()):
            return self._error(400, "invalid digest format")
        name = body.get("model") or body.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9][\w.\-/]*(:[\w.\-]+)?", name):
            return self._error(400, "invalid model name")
        source = body.get("from")
        files = body.get("files") or {}
        if not source and not files:
            return self._error(400, "neither 'from' or 'files' was specified")
        if source:
            if _full(source) not in self.models:
                return self._error(500, "pull model manifest: file does not exist")
            base = self.models[_full(source)]
        else:
            keys = [d.replace("-", ":", 1) for d in files.values()]
            if any(k not in self.blobs for k in keys):
                return self._error(400, "open blobs: no such file or directory")
            data = self.blobs[keys[0]]
            if data[:4] != b"GGUF":
                return self._error(400, "unknown type")
            base = OllamaModel(gguf_architecture(data))
        try:
            metadata = self._adapter(base, adapters) if adapters else {}
        except web.HTTPBadRequest as exc:
            return web.Response(status=400, text=exc.text, content_type="application/json")
        self.models[_full(name)] = OllamaModel(base.architecture, source, adapters, metadata)
        if body.get("stream") is False:
            return web.json_response({"status": "success"})
        lines = [{"status": "using existing layer"}, {"status": "writing manifest"}]
        text = "".join(json.dumps(x) + "\n" for x in [*lines, {"status": "success"}])
        return web.Response(text=text, content_type="application/x-ndjson")

    async def delete(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        name = (body or {}).get("model", "")
        if _full(name) not in self.models:
            return self._error(404, f"model '{name}' not found")
        del self.models[_full(name)]
        return web.Response(status=200)

    async def chat(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        name = body["model"]
        model = self.models.get(_full(name))
        if model is None:
            return self._error(404, f'model "{name}" not found, try pulling it first')
        reply: dict[str, Any] = {
            "model": name,
            "created_at": "2026-11-30T07:00:00Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
        }
        if _full(name) in self.unloadable:
            return self._error(
                500, "llama runner process has terminated: error loading model: missing tensor"
            )
        if not body.get("messages"):
            reply["done_reason"] = "unload" if body.get("keep_alive") == 0 else "load"
            return web.json_response(reply)
        text = self.answer(model, body["messages"])
        reply.update(done_reason="stop", total_duration=1000, prompt_eval_count=40, eval_count=20)
        if body.get("stream") is not False:  # Ollama's default: one JSON object a line
            return await _stream(request, name, text, reply)
        reply["message"]["content"] = text
        return web.json_response(reply)


async def _stream(
    request: web.Request, name: str, text: str, done: dict[str, Any]
) -> web.StreamResponse:
    """A streamed chat reply: a line per piece of text, then the ``done`` line with counts."""
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for i in range(0, len(text), 5):
        piece = {"model": name, "created_at": "2026-11-30T07:00:00Z", "done": False,
                 "message": {"role": "assistant", "content": text[i : i + 5]}}  # fmt: skip
        await resp.write(json.dumps(piece).encode() + b"\n")
    await resp.write(json.dumps(done).encode() + b"\n")
    await resp.write_eof()
    return resp


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
