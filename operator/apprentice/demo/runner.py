"""``apprentice demo``: the whole lifecycle, offline, in a few minutes.

Writes the workload and config into a directory, streams every input through the
:class:`~apprentice.gateway.facade.Apprentice` facade exactly like
``apprentice batch --wait-for-training`` (a request is not started while a
training run is due or running, so the run is reproducible), then measures what
the README promises from the store the gateway wrote:

- ``spend_reduction_last_1000``: 1 - teacher spend over the last 1,000 requests /
  what those requests would have cost all-teacher (the average teacher cost of
  the run per request: the replay teacher prices every call like the frontier model);
- ``heldout_agreement``: the promoted version's score on the held-out split;
- ``seconds``, ``training_seconds`` (of them, waiting on training runs) and
  ``cpu_seconds`` (user + system of this process and its trainers: steadier than
  wall time on a shared machine).

Part-way through (``shift_at``), half the tickets start being about a category
the student has never seen (``security``): the engine must notice (a shift or
drift alarm, coaching), retrain on what the teacher says now, promote the new
version and withdraw the teacher again. ``shift_detected_at`` and
``recovered_at`` (steady state again) say when, from the events table.
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from apprentice.demo import scenario, workload
from apprentice.demo.scenario import TASK, DemoSettings

__all__ = ["DemoResult", "last_window_reduction", "prepare", "run_demo"]

LAST = 1000
_MARK = "written by `apprentice demo`"


@dataclass(frozen=True)
class DemoResult:
    """The demo's numbers; the first six keys are the documented ``--json`` contract."""

    requests: int
    teacher_calls: int
    final_phase: str
    spend_reduction_last_1000: float | None
    heldout_agreement: float | None
    seconds: float
    training_seconds: float
    cpu_seconds: float
    steady_state_at: int | None
    shift_at: int | None
    shift_detected_at: int | None
    recovered_at: int | None
    active_version: str | None
    versions: list[dict[str, Any]]
    teacher_spend: float
    all_teacher_estimate: float
    peak_rss_mb: float
    directory: str
    report: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss_mb() -> float:
    """Peak RSS of this process and, separately, of its largest child (the trainer)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, child) / 1024, 1)  # Linux reports KiB


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (trainers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + child.ru_utime + child.ru_stime


def prepare(
    directory: Path,
    requests: int,
    seed: int,
    settings: DemoSettings,
    shift_at: int | None = None,
) -> Path:
    """Write data and config; clear the state of an earlier demo run in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg_path = directory / "apprentice.yaml"
    if cfg_path.exists():
        if _MARK not in cfg_path.read_text(encoding="utf-8")[:200]:
            raise FileExistsError(
                f"{cfg_path} exists and was not written by apprentice demo; "
                "pass --dir with an empty or earlier demo directory"
            )
        for name in ("apprentice.db", "apprentice.db-wal", "apprentice.db-shm", "report.html"):
            (directory / name).unlink(missing_ok=True)
        shutil.rmtree(directory / "models", ignore_errors=True)
    workload.write_workload(directory, requests, seed, shift_at=shift_at)
    scenario.write_config(directory, settings)
    return cfg_path


def last_window_reduction(
    costs: list[float], teacher_called: list[bool], avg_cost: float
) -> float | None:
    """1 - actual / all-teacher spend over the given requests (None with no price known)."""
    if not costs or avg_cost <= 0:
        return None
    actual = sum(c for c, called in zip(costs, teacher_called, strict=True) if called)
    return round(1.0 - actual / (avg_cost * len(costs)), 4)


class _Bar:
    """The progress bar on stderr (a no-op without ``progress``)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="req", desc="cold_start",
                            dynamic_ncols=True)  # fmt: skip

    def training(self, index: int) -> None:
        if self.bar is not None:
            self.bar.set_description("training")
            self.bar.write(f"request {index:,}: training the student on the teacher's answers")

    def trained(self, store: Any, seconds: float) -> None:
        if self.bar is not None:
            self.bar.write(_training_note(store, seconds))

    def step(self, phase: str) -> None:
        if self.bar is not None:
            self.bar.set_description(phase, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class _Run:
    """What the request loop saw: when the task first graduated, time spent on training."""

    steady_at: int | None = None
    training_seconds: float = 0.0


async def _serve(
    app: Any,
    inputs: list[dict[str, Any]],
    bar: _Bar,
    on_phase: Callable[[int, str], None] | None,
) -> _Run:
    """Every input through the facade, one at a time, waiting out each training run."""
    run = _Run()
    phase = "cold_start"
    for index, task_input in enumerate(inputs):
        if app.training_due_or_running(TASK):
            waited = time.perf_counter()
            bar.training(index)
            await app.wait_for_training_idle(TASK)
            run.training_seconds += time.perf_counter() - waited
            bar.trained(app.store, time.perf_counter() - waited)
        await app.run(TASK, task_input)
        now_phase = app.engine_state(TASK).phase_name()
        if now_phase != phase:
            phase = now_phase
            if on_phase is not None:
                on_phase(index, phase)
            if phase == "steady_state" and run.steady_at is None:
                run.steady_at = index
        bar.step(phase)
    return run


async def run_demo(
    directory: Path,
    *,
    requests: int = 4000,
    seed: int = 7,
    shift_at: int | None = None,
    settings: DemoSettings | None = None,
    progress: bool = True,
    write_report: bool = True,
    on_phase: Callable[[int, str], None] | None = None,
) -> DemoResult:
    """Run the demo in ``directory`` and return its numbers."""
    from apprentice.gateway.facade import Apprentice

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    chosen = settings or DemoSettings()
    if shift_at is not None and not 0 < shift_at < requests:
        raise ValueError(f"shift_at must be within the {requests} requests, got {shift_at}")
    cfg_path = prepare(directory, requests, seed, chosen, shift_at)
    inputs = [t.input for t in workload.generate(requests, seed, shift_at=shift_at)]
    bar = _Bar(len(inputs), progress)
    try:
        async with Apprentice.from_config(cfg_path) as app:
            # Same ids, same sampling draws: a rerun makes the same decisions.
            ids = (f"demo-{seed}-{i}" for i in range(10**9))
            app.gateway.new_request_id = ids.__next__
            run = await _serve(app, inputs, bar, on_phase)
            status = await app.status(TASK)
            store = app.store
            await app.flush()
            summary = _summarise(store, status, requests)
            detected = _detected(store, shift_at)
            recovered_at = _recovered(store, detected)
            report_path = _write_report(store, app.config, directory) if write_report else None
    finally:
        bar.close()
    return DemoResult(
        requests=requests,
        teacher_calls=summary["teacher_calls"],
        final_phase=status["phase"],
        spend_reduction_last_1000=summary["reduction"],
        heldout_agreement=summary["heldout"],
        seconds=round(time.perf_counter() - started, 1),
        training_seconds=round(run.training_seconds, 1),
        cpu_seconds=round(_cpu_seconds() - cpu_started, 1),
        steady_state_at=run.steady_at,
        shift_at=shift_at,
        shift_detected_at=detected,
        recovered_at=recovered_at,
        active_version=status.get("active_version"),
        versions=summary["versions"],
        teacher_spend=summary["spend"],
        all_teacher_estimate=summary["estimate"],
        peak_rss_mb=_peak_rss_mb(),
        directory=str(directory),
        report=None if report_path is None else str(report_path),
    )


def _detected(store: Any, shift_at: int | None) -> int | None:
    """The request index of the first alarm at or after the shift (events table)."""
    if shift_at is None:
        return None
    kinds = ["shift", "drift", "coaching", "emergency", "anti_correlation"]
    for event in store.events(TASK, kinds=kinds):
        index = event.data.get("index")
        if isinstance(index, int) and index >= shift_at:
            return index
    return None


def _recovered(store: Any, detected: int | None) -> int | None:
    """After the alarm: when coaching ended or the task graduated again (events table)."""
    if detected is None:
        return None
    for event in store.events(TASK, kinds=["coaching_end", "phase"]):
        index = event.data.get("index")
        if not isinstance(index, int) or index <= detected:
            continue
        if event.kind == "coaching_end" or event.data.get("after") == "steady_state":
            return index
    return None


def _training_note(store: Any, seconds: float) -> str:
    versions = store.versions(TASK)
    if not versions:
        return f"training ended after {seconds:.0f} s without a model version"
    v = versions[-1]
    score = "n/a" if v.heldout_score is None else f"{v.heldout_score:.3f}"
    why = f" ({v.reason})" if v.state == "rejected" and v.reason else ""
    return f"{v.version} {v.state}{why}: held-out agreement {score}, {seconds:.0f} s"


def _summarise(store: Any, status: dict[str, Any], requests: int) -> dict[str, Any]:
    rows = store.requests(TASK, limit=requests)
    paid = [r for r in rows if r.teacher_called and r.error is None]
    avg = sum(r.cost for r in paid) / len(paid) if paid else 0.0
    last = rows[-LAST:]
    active = store.active_version(TASK)
    return {
        "teacher_calls": sum(1 for r in rows if r.teacher_called),
        "reduction": last_window_reduction(
            [r.cost for r in last], [r.teacher_called for r in last], avg
        ),
        "heldout": None
        if active is None or active.heldout_score is None
        else round(active.heldout_score, 4),
        "versions": [
            {
                "version": v.version,
                "state": v.state,
                "heldout_score": v.heldout_score,
                "reason": v.reason,
            }
            for v in store.versions(TASK)
        ],
        "spend": round(sum(r.cost for r in rows), 6),
        "estimate": round(avg * len(rows), 6),
    }


def _write_report(store: Any, cfg: Any, directory: Path) -> Path | None:
    from apprentice.reporting import html, plots, snapshot
    from apprentice.reporting import report as report_mod

    statuses = snapshot.statuses_from_store(cfg, store).tasks
    data = report_mod.build_report(store, cfg, statuses=statuses)
    try:
        return html.write_html(data, directory / "report.html")
    except plots.PlotsUnavailable as exc:
        print(f"note: no HTML report: {exc}", file=sys.stderr)
        return None
