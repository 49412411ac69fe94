"""The store writer thread's CPU per paid request: one reservation plus one request write.

Why: at 1,000 paid requests/s the gateway's writer thread (:mod:`apprentice.gateway.writer`)
is busy nearly all the time and shares the GIL with the event loop, so each
microsecond of Python it runs per paid request is latency for every request (issue 12,
the 1 s-teacher p99). This replays what it runs: ``Store.record_requests`` group commits
on a SQLite file built from the teacher bench's config (``bench/teacher_gateway.py``),
with ~1,000 reservations open (a second of 1 s-teacher calls at 1,000/s). Each batch is
3 request writes, each settling an earlier reservation with an example and its spend
line (as ``gateway/commit.py`` writes them), and 3 new reservations built by
``SharedBudget`` itself (its asks and admit closure, as ``hold`` queues them). CPU is
``time.thread_time`` of the calling thread around each group commit (the writer
thread's own CPU, fsync syscalls included), per paid request.

Before/after in one run: ``--before DIR`` names the ``operator`` directory of another
checkout (e.g. ``git archive HEAD operator | tar -x -C /tmp/wcpu-before``); each round
runs both, alternating, in fresh processes (``PYTHONPATH``); the median round is kept.
``--split`` adds one run of each with every SQLite call's CPU counted apart (SQLite
releases the GIL inside a call; the Python around it holds it against the event loop).
``--profile`` adds a cProfile (thread time) of one run of each: the share of the
writer's CPU by function (cProfile's cost per Python call inflates Python's share).

Writes bench/results/writer.json and writer.md.
Run: ``.venv/bin/python bench/writer_bench.py --before /tmp/wcpu-before/operator
[--batches 1500] [--rounds 5] [--split] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
OPERATOR = Path(__file__).resolve().parent.parent / "operator"
TASK = "classify_ticket"
PER_BATCH = 3  # paid requests a batch: ~6 writer items, as measured at 1,000/s
CONFIG = f"""
tasks:
  - name: {TASK}
    input_schema: {{text: str}}
    output_schema: {{category: str, priority: int}}
    evaluator: exact_match
remote: {{provider: openai_compatible, model: gpt-4o, base_url: "http://127.0.0.1:9/v1",
          api_key_env: WRITER_BENCH_KEY, timeout_s: 30, max_retries: 0}}
budget: {{daily: 1000000.0}}
store: {{url: "sqlite:///{{db}}"}}
"""


class _Timed:
    """A sqlite3 connection or cursor whose calls add their thread CPU to ``spent[0]``
    (``--split``: how much of the writer's CPU is inside SQLite, not Python)."""

    def __init__(self, inner: Any, spent: list[float]) -> None:
        self._inner, self._spent = inner, spent

    def _timed(self, name: str, *args: Any) -> Any:
        t0 = time.thread_time()
        try:
            return getattr(self._inner, name)(*args)
        finally:
            self._spent[0] += time.thread_time() - t0

    def execute(self, *args: Any) -> Any:
        return self._timed("execute", *args)

    def fetchone(self) -> Any:
        return self._timed("fetchone")

    def fetchall(self) -> Any:
        return self._timed("fetchall")

    def cursor(self) -> _Timed:
        return _Timed(self._inner.cursor(), self._spent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _child(batches: int, open_holds: int, profile: str | None, split: bool) -> dict[str, Any]:
    """One run in this process (the code on ``sys.path``): CPU per paid request."""
    from apprentice import config
    from apprentice.gateway.spending import SharedBudget
    from apprentice.store import open_store, records
    from apprentice.store.sqlite import SqliteStore

    in_sql = [0.0]
    if split:  # every statement's CPU counted apart (a proxy: ~0.5 us a call more)
        connect = SqliteStore._connection
        SqliteStore._connection = lambda self: _Timed(connect(self), in_sql)  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.loads(CONFIG.replace("{db}", f"{tmp}/apprentice.db"), env={})
        store = open_store(cfg.store.url)
        budget = SharedBudget(cfg, store, owner="bench")
        now = datetime.now(UTC)
        holds: deque[Any] = deque()
        n = 0

        def asks(count: int) -> list[Any]:
            nonlocal n
            out = []
            for _ in range(count):
                n += 1
                hold, ask = budget._ask(TASK, 0.0125, now, "teacher", f"r{n}")
                holds.append(hold)
                out.append(ask)
            return out

        def write(hold: Any) -> records.RequestWrite:
            rid = hold.request_id
            task_input = {"text": f"ticket {rid}: my invoice shows a double charge, please help"}
            output = {"category": "billing", "priority": 2}
            digest = records.input_hash(task_input)
            spend = [budget.line(hold, TASK, 0.0031, now, request_id=rid, provider="openai",
                                 model="gpt-4o", input_tokens=120, output_tokens=12)]  # fmt: skip
            example = records.ExampleRecord(
                task=TASK, input=task_input, output=output, input_hash=digest,
                split=records.assign_split(digest, 0.1), teacher_provider="openai",
                teacher_model="gpt-4o", created_at=now, cost=0.0031, request_id=rid,
            )  # fmt: skip
            request = records.request_row(
                id=rid, task=TASK, received_at=now, route="teacher", served_by="teacher",
                teacher_model="gpt-4o", teacher_provider="openai", student_version=None,
                latency_ms=1003.0, error=None, cost=0.0031, tags={}, caller=None,
                input=task_input, output=output,
            )  # fmt: skip
            return {"request": request, "example": example, "spend": spend}

        for _ in range(open_holds // 100):
            store.record_requests([], asks(100))  # type: ignore[attr-defined]
        cpu = sql = 0.0
        prof = cProfile.Profile(time.thread_time) if profile else None
        for i in range(batches):
            writes = [write(holds.popleft()) for _ in range(PER_BATCH)]
            new = asks(PER_BATCH)
            now += timedelta(milliseconds=3)
            if prof is not None:
                prof.enable()
            t0, s0 = time.thread_time(), in_sql[0]
            out = store.record_requests(writes, new)  # type: ignore[attr-defined]
            if i >= 20:  # warmed up
                cpu += time.thread_time() - t0
                sql += in_sql[0] - s0
            if prof is not None:
                prof.disable()
            assert not any(isinstance(o, Exception) for o in out), out
        if prof is not None:
            prof.dump_stats(profile)
        store.close()
    paid = (batches - 20) * PER_BATCH
    return {"cpu_us_per_paid": cpu / paid * 1e6, "sql_us_per_paid": sql / paid * 1e6}


def _run(
    source: Path, args: argparse.Namespace, profile: str | None = None, split: bool = False
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    cmd = [sys.executable, __file__, "--child", "--batches", str(args.batches),
           "--open", str(args.open)] + (["--profile-to", profile] if profile else [])  # fmt: skip
    cmd += ["--split"] if split else []
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _table(path: str, top: int = 14) -> list[dict[str, Any]]:
    """The functions with the most own time, with own and cumulative shares of the total."""
    stats = pstats.Stats(path)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in rows.values())
    ranked = sorted(rows.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [
        {"function": f"{Path(f).name}:{line} {name}", "calls": v[1],
         "own_pct": round(100 * v[2] / total, 1), "cum_pct": round(100 * v[3] / total, 1)}
        for (f, line, name), v in ranked
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, help="the operator dir of the code to compare with")
    p.add_argument("--batches", type=int, default=1500)
    p.add_argument("--open", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--split", action="store_true", help="also: CPU in SQLite vs Python")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args.batches, args.open, args.profile_to, args.split)))
        return
    sources = {"after": OPERATOR} | ({"before": args.before} if args.before else {})
    runs: dict[str, list[float]] = {name: [] for name in sources}
    for r in range(args.rounds):
        order = list(sources.items()) if r % 2 == 0 else list(reversed(sources.items()))
        for name, source in order:
            runs[name].append(_run(source, args)["cpu_us_per_paid"])
    result: dict[str, Any] = {
        "batches": args.batches, "per_batch": PER_BATCH, "open_reservations": args.open,
        "rounds": args.rounds, "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_us_per_paid": {k: [round(v, 1) for v in vs] for k, vs in runs.items()},
        "median_us": {k: round(statistics.median(vs), 1) for k, vs in runs.items()},
    }  # fmt: skip
    if args.split:  # one more run of each, every SQLite call timed
        result["split_us_per_paid"] = {}
        for name, source in sources.items():
            got = _run(source, args, split=True)
            sql = got["sql_us_per_paid"]
            result["split_us_per_paid"][name] = {
                "total": round(got["cpu_us_per_paid"], 1), "in_sqlite": round(sql, 1),
                "python": round(got["cpu_us_per_paid"] - sql, 1),
            }  # fmt: skip
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            result["profile"] = {}
            for name, source in sources.items():
                _run(source, args, f"{tmp}/{name}.prof")
                result["profile"][name] = _table(f"{tmp}/{name}.prof")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "writer.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "writer.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Store writer thread: CPU per paid request",
        "",
        f"`bench/writer_bench.py`: {result['batches']} group commits of {result['per_batch']}"
        f" request writes + {result['per_batch']} reservations, {result['open_reservations']}"
        f" reservations open, SQLite; thread CPU µs per paid request, median of"
        f" {result['rounds']} alternating rounds (load average {result['load_avg_1m']}).",
        "",
        "| code | median µs | rounds |",
        "|---|---|---|",
    ]
    for name, median in result["median_us"].items():
        rounds = ", ".join(f"{v:.0f}" for v in result["cpu_us_per_paid"][name])
        lines.append(f"| {name} | {median:.0f} | {rounds} |")
    if "split_us_per_paid" in result:
        lines += ["", "One more run of each with every SQLite call timed apart (a proxy around",
                  "each call adds ~0.5 µs of Python a call):", "",
                  "| code | total µs | in SQLite µs | Python µs |", "|---|---|---|---|"]  # fmt: skip
        for name, got in result["split_us_per_paid"].items():
            lines.append(f"| {name} | {got['total']} | {got['in_sqlite']} | {got['python']} |")
    for name, table in result.get("profile", {}).items():
        lines += ["", f"## cProfile (thread time), {name}", "",
                  "| function | calls | own % | cum % |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['function']} | {r['calls']} | {r['own_pct']} | {r['cum_pct']} |"
                  for r in table]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
