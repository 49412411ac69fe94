"""Gateway benchmark: the gateway's own cost on the local-only path.

With an in-process student that answers instantly, in ONE run:

1. ``max_rps``: closed-loop maximum throughput (64 requests in flight) through
   the HTTP gateway and through the Python facade;
2. open-loop latency at 100, 500 and 1,000 requests/s offered, for
   - ``direct``: calling the student directly (in-process, the baseline),
   - ``bare_http``: a bare aiohttp server that only calls the student,
   - ``gateway``: ``POST /v1/tasks/{task}`` through the whole request path
     (validation, engine route, student, engine update, store transaction),
   reporting p50/p99 and the *added* latency (gateway minus direct);
3. memory per 10,000 stored examples: the gateway's RSS growth and the SQLite
   file growth while 10,000 teacher answers are stored through the path;
4. the paid path: every request a teacher call, each reservation a row in a
   locked store transaction (issue 9's before/after figures are kept from the
   committed results: the core they were injected into is gone).

The HTTP servers run in a child process (one core). Two load generators drive them, in
turn against the same server process, and every HTTP figure says which one produced it:

- ``go``: ``bench/loadgen`` (Go, its own process, one core: see bench/loadgen/README.md).
  It paces from a timerfd and measures from each request's intended send time; its
  ``added`` subtracts the in-process student call's own p99 (microseconds).
- ``python``: the aiohttp client in this process, kept for continuity with earlier
  results (and the ``--before`` run). It costs about as much CPU per request as the
  server, and asyncio's timers wake in whole milliseconds, so its open loop sends late
  and counts that as latency; its ``added`` subtracts the same loop's lateness as
  measured on the in-process student (``direct``).

``--client go|python|both`` (default both). Without a built generator and without Go on
PATH the run stops and says to run ``make loadgen``.

The task sits in steady state with a sampling floor of
1e-4 and a detection guarantee loose enough (``max_detection_delay``) not to
lift it, so practically every request is local-only: with the default guarantee
(5,000 requests) about one request in 75 also asks the (replay) teacher and
waits for its reservation and commit fsyncs, and those set the p99. The store is SQLite with
``synchronous=FULL`` on the VM disk; the gateway's writer group-commits the
request transactions queued meanwhile (``Store.record_requests``: one fsync,
each request atomic). ``--tmpfs`` puts it on ``/dev/shm`` instead, to take the
disk out of the measurement; the run also reports single-request commits/s.

Writes bench/results/gateway.json and gateway.md (``--results DIR``: there instead).
Run: ``.venv/bin/python bench/gateway_bench.py [--seconds 4] [--client both] [--trials 3]``.
The HTTP servers run on the event loop ``apprentice serve`` picks (uvloop when installed;
the report's first line names it); ``BENCH_EVENT_LOOP=asyncio`` (or ``uvloop``) forces one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen as loadgen  # bench/_loadgen.py and its siblings, found by the path above
import gateway_report
from _loops import (
    TRIALS,
    closed_loop,
    median_by_p99,
    process_cpu,
    serve_on,
    server_loop,
    trials,
)

from apprentice import config as config_mod
from apprentice.config import TaskConfig
from apprentice.engine import lifecycle
from apprentice.store import open_store, records
from apprentice.students import base as students

RESULTS = Path(__file__).resolve().parent / "results"
TASK = "classify"
RATES = (100, 500, 1000)
CLIENTS = ("go", "python")
TEXT = "ticket {i} cannot log in since the update"
INPUTS = 1000  # distinct inputs: request i sends input i % INPUTS
BODY = json.dumps({"input": {"text": TEXT}})  # the Go generator's template: the same bodies


def _input(i: int) -> dict[str, Any]:
    return {"text": TEXT.format(i=i % INPUTS)}


class InstantStudent:
    """A student that answers at once (no model): isolates the gateway's cost."""

    def __init__(self) -> None:
        self.version: str | None = None

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> Any:
        return students.StudentAnswer({"label": "login"}, '{"label":"login"}', self.version, 0.0)

    async def health(self) -> students.Health:
        return students.Health(True, "ok")

    async def load_version(self, version: students.VersionRef) -> None:
        self.version = version.name

    async def unload_version(self, name: str) -> None:
        self.version = None

    def active_version(self) -> str | None:
        return self.version

    async def aclose(self) -> None:
        return None


def write_setup(directory: Path, *, steady: bool = True) -> Path:
    """Config, replay answers and a store whose task is in steady state with v1."""
    answers = directory / "answers.jsonl"
    with answers.open("w") as f:
        for i in range(10_000 if not steady else 1000):
            inp = (
                {"text": f"ticket {i} cannot log in since the update"}
                if not steady
                else (_input(i))
            )
            f.write(json.dumps({"input": inp, "output": {"label": "login"}}) + "\n")
    cfg_dict = {
        "tasks": [
            {
                "name": TASK,
                "input_schema": {"text": "str"},
                "output_schema": {"label": "str"},
                "evaluator": "exact_match",
                # The student's path only: no sampled teacher call (see the docstring).
                "sampling": {"min_floor": 0.0001, "max_detection_delay": 100_000_000},
            }
        ],
        "remote": {"provider": "replay", "path": str(answers), "price_as": "gpt-4o"},
        "local": {"model_dir": str(directory / "models")},
        "store": {"url": f"sqlite:///{directory}/apprentice.db"},
        "gateway": {"max_concurrency": 4096, "orchestrator": "operator"},
    }
    cfg_path = directory / "apprentice.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_dict))
    if steady:
        cfg = config_mod.load(cfg_path)
        params = lifecycle.TaskParams.from_config(cfg, TASK)
        state = lifecycle.version_promoted(lifecycle.initial(params), "v1")
        for i in range(params.detectors.window_size):
            state, _ = lifecycle.observe(state, 1.0, index=i)
        assert state.phase is lifecycle.Phase.steady_state
        adapter = directory / "models" / TASK / "v1"
        adapter.mkdir(parents=True)
        now = datetime.now(UTC)
        with open_store(cfg.store.url) as store:
            store.add_version(
                records.ModelVersionRecord(
                    task=TASK,
                    version="v1",
                    state="candidate",
                    path=str(adapter),
                    base_model="bench",
                    created_at=now,
                    updated_at=now,
                    heldout_score=1.0,
                )
            )
            store.update_version(TASK, "v1", state="promoted")
            store.save_task_state(TASK, state.to_dict())
    return cfg_path


# -- child: the servers ----------------------------------------------------------------------


async def serve(cfg_path: Path, mode: str) -> None:
    from aiohttp import web

    from apprentice.gateway.facade import Apprentice
    from apprentice.gateway.http import build_app

    try:
        from apprentice.gateway.server import tune_process
    except ImportError:  # --before at f86b00a: what its `serve` did (default GC thresholds)

        def tune_process() -> None:
            gc.freeze()
            sys.setswitchinterval(0.0005)

    student = InstantStudent()
    if mode == "gateway":
        app = Apprentice.from_config(cfg_path, student_factory=lambda _t: student)
        await app.start()
        web_app = build_app(app.gateway)
    else:
        task = config_mod.load(cfg_path).task(TASK)

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            answer = await student.generate(task, body["input"])
            return web.json_response({"output": answer.output, "request_id": uuid.uuid4().hex})

        web_app = web.Application()
        web_app.router.add_post("/v1/tasks/{task}", handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tune_process()  # as `apprentice serve` does
    print(port, flush=True)
    await asyncio.Event().wait()


# -- parent: load generation ------------------------------------------------------------------


def start_server(cfg_path: Path, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--config", str(cfg_path)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1/tasks/{TASK}"


async def go_closed(url: str, seconds: float, server: int, workers: int = 64) -> dict[str, Any]:
    """The Go generator's closed loop: ``workers`` connections, as ``closed_loop``; with
    the server's and the generator's CPU per request."""
    flags: dict[str, Any] = {"body": BODY, "mod": INPUTS, "connections": workers}
    await asyncio.to_thread(loadgen.run, url, mode="closed", seconds=0, warmup=300, **flags)
    cpu = process_cpu(server)
    report = await asyncio.to_thread(loadgen.run, url, mode="closed", seconds=seconds, **flags)
    cpu = process_cpu(server) - cpu
    if report["errors"]:
        raise RuntimeError(f"{report['errors']} errors in the Go closed loop: {report}")
    s = loadgen.summary(report)
    return {
        "max_rps": s["achieved_rps"],
        "server_cpu_us": round(cpu / report["requests"] * 1e6, 1),
        "client_cpu_us": s["client_cpu_us"],
    }


async def python_closed(call: Any, seconds: float, server: int) -> dict[str, Any]:
    """``closed_loop`` with the server's and this process's (the client's) CPU per request."""
    cpu, client, wall = process_cpu(server), time.process_time(), time.perf_counter()
    rps = await closed_loop(call, seconds)
    done = rps * (time.perf_counter() - wall)
    cpu, client = process_cpu(server) - cpu, time.process_time() - client
    return {
        "max_rps": round(rps, 1),
        "server_cpu_us": round(cpu / done * 1e6, 1),
        "client_cpu_us": round(client / done * 1e6, 1),
    }


async def go_trials(url: str, rate: int, seconds: float, n: int = TRIALS) -> dict[str, Any]:
    """As ``trials``, each run a Go open loop (16 connections, opened before it starts)."""
    runs = []
    for _ in range(n):
        report = await asyncio.to_thread(
            loadgen.run, url, mode="open", rate=rate, seconds=seconds, warmup=100, body=BODY,
            mod=INPUTS,
        )  # fmt: skip
        runs.append(loadgen.summary(report))
    return {**median_by_p99(runs), "p99_ms_trials": [r["p99_ms"] for r in runs]}


async def http_phase(
    cfg_path: Path, mode: str, seconds: float, clients: tuple[str, ...], n: int = TRIALS
) -> dict[str, dict[str, Any]]:
    """Each client's figures against ONE server process, the clients taking turns."""
    import aiohttp

    proc, url = start_server(cfg_path, mode)
    try:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def call(i: int) -> None:
                async with session.post(url, json={"input": _input(i)}) as resp:
                    if resp.status != 200:
                        raise RuntimeError(await resp.text())
                    await resp.read()

            for i in range(300):  # warm-up: connections, caches
                await call(i)
            out: dict[str, dict[str, Any]] = {c: {} for c in clients}
            if "go" in clients:
                out["go"] = await go_closed(url, seconds, proc.pid)
            if "python" in clients:
                out["python"] = await python_closed(call, seconds, proc.pid)
            for rate in RATES:
                if "go" in clients:
                    out["go"][str(rate)] = await go_trials(url, rate, seconds, n)
                if "python" in clients:
                    out["python"][str(rate)] = await trials(call, rate, seconds, n)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def direct_phase(seconds: float, n: int = TRIALS) -> dict[str, Any]:
    student = InstantStudent()
    task = TaskConfig(name=TASK)

    async def call(i: int) -> None:
        await student.generate(task, _input(i))

    return {str(rate): await trials(call, rate, seconds, n) for rate in RATES}


async def facade_phase(cfg_path: Path, seconds: float) -> float:
    from apprentice.gateway.facade import Apprentice

    async with Apprentice.from_config(cfg_path, student_factory=lambda _t: InstantStudent()) as app:

        async def call(i: int) -> None:
            await app.run(TASK, _input(i))

        return await closed_loop(call, seconds)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def memory_phase(directory: Path) -> dict[str, Any]:
    from apprentice.gateway.facade import Apprentice

    cfg_path = write_setup(directory, steady=False)
    db = directory / "apprentice.db"
    async with Apprentice.from_config(cfg_path, student_factory=lambda _t: InstantStudent()) as app:
        for i in range(200):  # warm-up
            await app.run(TASK, {"text": f"ticket {i} cannot log in since the update"})
        rss0, size0 = _rss_kib(), db.stat().st_size
        stored0 = sum(app.store.example_counts(TASK).values())
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await app.run(TASK, {"text": f"ticket {i} cannot log in since the update"})

        await asyncio.gather(*(one(i) for i in range(200, 10_000)))
        stored = sum(app.store.example_counts(TASK).values()) - stored0
        wal = db.with_name(db.name + "-wal")
        size1 = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        rss1 = _rss_kib()
    per = 10_000 / max(1, stored)
    return {
        "examples_stored": stored,
        "rss_growth_mib_per_10k_examples": round((rss1 - rss0) / 1024 * per, 2),
        "store_mib_per_10k_examples": round((size1 - size0) / 2**20 * per, 2),
    }


def disk_commit_rate(directory: Path, n: int = 200) -> float:
    store = open_store(f"sqlite:///{directory}/disk.db")
    started = time.perf_counter()
    for _ in range(n):
        store.record_request(
            records.RequestRecord(
                id=uuid.uuid4().hex,
                task=TASK,
                received_at=datetime.now(UTC),
                route="local_only",
                served_by="student",
            )
        )
    rate = n / (time.perf_counter() - started)
    store.close()
    return rate


# -- the cost of store-enforced caps (issue 9) --------------------------------------------------


def budget_setup(directory: Path, n: int = 20_000) -> Path:
    """A cold-start task (every request is a paid teacher call) under a cap never reached."""
    answers = directory / "answers.jsonl"
    with answers.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"input": _paid_input(i), "output": {"label": "login"}}) + "\n")
    cfg_dict = {
        "tasks": [
            {
                "name": TASK,
                "input_schema": {"text": "str"},
                "output_schema": {"label": "str"},
                "evaluator": "exact_match",
                "budget": {"daily": 1_000_000.0},
            }
        ],
        "remote": {"provider": "replay", "path": str(answers), "price_as": "gpt-4o"},
        "local": {"model_dir": str(directory / "models")},
        "budget": {"daily": 1_000_000.0},
        "store": {"url": f"sqlite:///{directory}/apprentice.db"},
        "gateway": {"max_concurrency": 4096, "orchestrator": "operator"},
    }
    cfg_path = directory / "apprentice.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_dict))
    return cfg_path


def _paid_input(i: int) -> dict[str, Any]:
    return {"text": f"ticket {i} cannot log in since the update"}


async def budget_phase(directory: Path, seconds: float) -> dict[str, Any]:
    """Paid requests through ``app.run``, each reservation a row in a locked transaction."""
    from apprentice.gateway.facade import Apprentice

    cfg_path = budget_setup(directory)
    async with Apprentice.from_config(cfg_path, student_factory=lambda _t: InstantStudent()) as app:

        async def call(i: int) -> None:
            await app.run(TASK, _paid_input(i % 20_000))

        for i in range(200):
            await call(i)
        result: dict[str, Any] = {"max_rps": round(await closed_loop(call, seconds), 1)}
        result["200"] = await trials(call, 200, seconds)
        await app.gateway.flush()
        result["reservations_left"] = len(app.gateway.store.reservations())
    return result


CLIENT_LABELS = {
    "go": loadgen.CLIENT,
    "python": "Python aiohttp client in the bench process (as in earlier results)",
}


def _differences(
    a: dict[str, Any], b: dict[str, Any], keys: tuple[str, str] = ("p50_ms", "p99_ms")
) -> dict[str, dict[str, float]]:
    """Per rate, ``a``'s p50 and p99 minus ``b``'s (``keys``: the fields read in ``b``)."""
    return {
        str(rate): {
            q: round(a[str(rate)][q] - b[str(rate)][k], 3)
            for q, k in zip(("p50_ms", "p99_ms"), keys, strict=True)
        }
        for rate in RATES
    }


def derive(result: dict[str, Any]) -> None:
    """The added latencies, per client, and the targets."""
    d = result["direct"]
    if "http" in result:
        g, b = result["http"]["gateway"], result["http"]["bare_http"]
        result["added"] = _differences(g, d)
        # What the gateway adds over a bare aiohttp server that only calls the student: the
        # HTTP round trip itself (both sides on this machine's two cores) is not the gateway's.
        result["added_over_bare"] = _differences(g, b)
    if "http_go" in result:
        g, b = result["http_go"]["gateway"], result["http_go"]["bare_http"]
        # The Go client sends on time, so the student's baseline is its own call, not the
        # Python loop's lateness that ``direct``'s p99 mostly is.
        result["added_go"] = _differences(g, d, ("from_send_p50_ms", "from_send_p99_ms"))
        result["added_over_bare_go"] = _differences(g, b)
    by = "go" if "http_go" in result else "python"
    g = result["http_go" if by == "go" else "http"]["gateway"]
    added = result["added_go" if by == "go" else "added"]
    result["targets"] = {
        "by": by,
        "throughput": g["max_rps"] >= 2000,
        "p99_500": added["500"]["p99_ms"] < 5.0,
        "p99_1000_1ms": {
            c: result[k]["1000"]["p99_ms"] <= 1.0
            for c, k in (("go", "added_go"), ("python", "added"))
            if k in result
        },
    }


async def main_async(
    seconds: float, base: Path | None, clients: tuple[str, ...], n: int = TRIALS
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=base) as tmp, tempfile.TemporaryDirectory() as disk:
        root = Path(tmp)
        (root / "gw").mkdir()
        (root / "mem").mkdir()
        cfg_path = write_setup(root / "gw")
        result: dict[str, Any] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, HTTP servers on {server_loop()}",
            "seconds": seconds,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "store": "SQLite (WAL, synchronous=FULL, group commit) on "
            + ("tmpfs" if base else "the VM disk"),
            "trials": n,
            "clients": {c: CLIENT_LABELS[c] for c in clients},
            "direct": await direct_phase(seconds, n),
        }
        bare = await http_phase(cfg_path, "bare", seconds, clients, n)
        gateway = await http_phase(cfg_path, "gateway", seconds, clients, n)
        result["load_average_after_http"] = [round(x, 2) for x in os.getloadavg()]
        for client, key in (("python", "http"), ("go", "http_go")):
            if client in clients:
                result[key] = {"bare_http": bare[client], "gateway": gateway[client]}
        result["facade_max_rps"] = round(await facade_phase(cfg_path, seconds), 1)
        result["memory"] = await memory_phase(root / "mem")
        result["disk_commits_per_s"] = round(disk_commit_rate(Path(disk)), 1)
    derive(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--trials", type=int, default=TRIALS,
        help="open-loop runs per rate; latency is the median run by p99 (default: %(default)s). "
        "At 1,000/s for 4 s a p99 is the 40th-worst of 4,000 requests: one stall of a few ms "
        "on this shared VM moves it, so 5 or more give a steadier median",
    )  # fmt: skip
    parser.add_argument("--tmpfs", action="store_true", help="store on /dev/shm (no disk fsync)")
    parser.add_argument("--serve", choices=["gateway", "bare"])
    parser.add_argument("--config")
    parser.add_argument("--before", help="write this run's JSON here and stop (see BEFORE)")
    parser.add_argument(
        "--client", choices=[*CLIENTS, "both"], default="both",
        help="the HTTP phases' load generator(s): go (bench/loadgen), python (aiohttp here)",
    )  # fmt: skip
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="where gateway.json/.md go (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.serve:
        serve_on(serve(Path(args.config), args.serve))  # the loop `apprentice serve` picks
        return
    clients = CLIENTS if args.client == "both" else (args.client,)
    if "go" in clients:
        try:
            loadgen.binary()  # before the run, not minutes into it
        except loadgen.LoadgenError as exc:
            sys.exit(f"gateway_bench: {exc}")
    base = Path("/dev/shm") if args.tmpfs and Path("/dev/shm").is_dir() else None
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    result = asyncio.run(main_async(args.seconds, base, clients, args.trials))
    if args.before:  # an older commit's core (run from its worktree): its figures only
        Path(args.before).write_text(json.dumps(result, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        result["paid"] = asyncio.run(budget_phase(Path(tmp), args.seconds))
    if (RESULTS / "gateway.json").exists():  # issue 9's before/after, kept
        result["budget"] = json.loads((RESULTS / "gateway.json").read_text()).get("budget")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "gateway.md").write_text(gateway_report.render_md(result))
    print(gateway_report.render_md(result))


if __name__ == "__main__":
    main()
