"""``apprentice batch``: stream a JSONL of inputs through the interface.

::

    apprentice batch -c FILE --task T --input in.jsonl --output out.jsonl
                     [--concurrency N] [--wait-for-training]

Each input line is a task input object (or ``{"input": {...}}``). Each output line
is ``{"input", "output", "request_id"}`` or ``{"input", "error"}``, in input order.
A progress bar goes to stderr.

``--wait-for-training`` makes a backfill deterministic: whenever the engine says a
training run is due, no new request is started until in-flight ones finish and that
run is trained, validated and promoted or rejected. Without it training still
happens in the background, as under ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from apprentice import config


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "batch", help="run a JSONL file of inputs through the gateway's request path"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument("--input", required=True, help="JSONL of inputs ('-' for stdin)")
    parser.add_argument("--output", required=True, help="JSONL of results ('-' for stdout)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument(
        "--wait-for-training",
        action="store_true",
        help="pause whenever training is due until it is promoted or rejected",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _read_inputs(stream: IO[str]) -> Iterator[tuple[dict[str, Any] | None, str | None]]:
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield None, f"line {lineno}: not JSON ({exc.msg})"
            continue
        if isinstance(value, dict) and set(value) == {"input"} and isinstance(value["input"], dict):
            value = value["input"]
        if not isinstance(value, dict):
            yield None, f"line {lineno}: expected a JSON object (the task input)"
            continue
        yield value, None


class _OrderedSink:
    """Writes results in input order as they complete, and counts them.

    Requests finish out of order under ``--concurrency``; a line is held back until
    every earlier line is written, so the output file lines up with the input file.
    """

    def __init__(self, out: IO[str], progress: Any) -> None:
        self._out = out
        self._progress = progress
        self._results: dict[int, dict[str, Any]] = {}
        self._next_to_write = 0
        self.answered = 0
        self.failed = 0

    def put(self, index: int, line: dict[str, Any], ok: bool) -> None:
        self._results[index] = line
        if ok:
            self.answered += 1
        else:
            self.failed += 1
        if self._progress is not None:
            self._progress.update(1)
        self.flush()

    def flush(self) -> None:
        while self._next_to_write in self._results:
            line = self._results.pop(self._next_to_write)
            self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._next_to_write += 1
        self._out.flush()


async def _answer(
    app: Any, task: str, task_input: dict[str, Any] | None, problem: str | None
) -> tuple[dict[str, Any], bool]:
    """One input line's output line, and whether it was answered."""
    from apprentice.gateway import errors

    if task_input is None:
        return {"input": None, "error": {"type": "bad_request", "message": problem}}, False
    try:
        result = await app.run(task, task_input)
    except errors.GatewayError as exc:
        return {"input": task_input, "error": exc.body()["error"]}, False
    return {"input": task_input, "output": result.output, "request_id": result.request_id}, True


async def run_batch(
    app: Any,
    task: str,
    inputs: list[tuple[dict[str, Any] | None, str | None]],
    out: IO[str],
    *,
    concurrency: int = 1,
    wait_for_training: bool = False,
    progress: Any = None,
) -> tuple[int, int]:
    """Run ``inputs`` through ``app`` (an Apprentice); returns (answered, failed)."""
    sink = _OrderedSink(out, progress)

    async def one(index: int, task_input: dict[str, Any] | None, problem: str | None) -> None:
        sink.put(index, *await _answer(app, task, task_input, problem))

    pending: set[asyncio.Task[None]] = set()
    for index, (task_input, problem) in enumerate(inputs):
        if wait_for_training and app.training_due_or_running(task):
            if pending:
                await asyncio.gather(*pending)
                pending.clear()
            await app.wait_for_training_idle(task)
        while len(pending) >= concurrency:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
        pending.add(asyncio.create_task(one(index, task_input, problem)))
        if wait_for_training and concurrency == 1:
            # Sequential backfills stay exactly reproducible: settle each request first.
            await asyncio.gather(*pending)
            pending.clear()
    if pending:
        await asyncio.gather(*pending)
    if wait_for_training:
        await app.wait_for_training_idle(task)
    sink.flush()
    return sink.answered, sink.failed


async def _main(
    args: argparse.Namespace,
    cfg: config.ApprenticeConfig,
    inputs: list[tuple[dict[str, Any] | None, str | None]],
    sink: IO[str],
) -> int:
    from tqdm import tqdm

    from apprentice.gateway.facade import Apprentice

    bar = tqdm(
        total=len(inputs), file=sys.stderr, unit="req", disable=args.no_progress, desc=args.task
    )
    try:
        async with Apprentice.from_config(cfg) as app:
            app.check_task(args.task)
            answered, failed = await run_batch(
                app,
                args.task,
                inputs,
                sink,
                concurrency=max(1, args.concurrency),
                wait_for_training=args.wait_for_training,
                progress=bar,
            )
    finally:
        bar.close()
    print(f"{answered} answered, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 2


def run(args: argparse.Namespace) -> int:
    from apprentice.gateway import errors

    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        if args.input == "-":
            inputs = list(_read_inputs(sys.stdin))
        else:
            with Path(args.input).open(encoding="utf-8") as source:
                inputs = list(_read_inputs(source))
        if args.output == "-":
            return asyncio.run(_main(args, cfg, inputs, sys.stdout))
        with Path(args.output).open("w", encoding="utf-8") as sink:
            return asyncio.run(_main(args, cfg, inputs, sink))
    except errors.GatewayError as exc:
        print(f"error: {exc.message} [{exc.docs}]", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
