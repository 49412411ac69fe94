"""``apprentice simulate``: the what-if planner, and the engine's executable spec.

Reads a config and a trace (JSONL, one request per line: ``{"score": 0.93}`` or
``{"agree": true}``), runs :func:`apprentice.engine.simulation.simulate` and
prints a readable timeline, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from apprentice import config
from apprentice.commands import _store_args
from apprentice.engine import lifecycle, simulation


class TraceError(ValueError):
    """A trace line that is not ``{"score": x}`` with x in [0, 1] or ``{"agree": bool}``."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="replay a trace of agreement scores through the engine (no API calls)",
        description="Replay a trace of agreement scores through the decision engine.",
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="task name in the config")
    parser.add_argument(
        "--trace", required=True, help='JSONL: {"score": 0.93} or {"agree": true} per request'
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--training-delay",
        type=int,
        default=0,
        metavar="N",
        help="requests between training start and promotion (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling draws")
    parser.set_defaults(func=run)


def parse_trace(lines: list[str], source: str = "<trace>") -> list[float]:
    """Scores of a trace; blank lines are skipped, anything else wrong is an error."""
    scores: list[float] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        where = f"{source}:{number}"
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{where}: not JSON ({exc.msg})") from None
        if isinstance(item, dict) and "score" in item:
            score = item["score"]
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise TraceError(f"{where}: score must be a number in [0, 1], got {score!r}")
            if not 0.0 <= float(score) <= 1.0:
                raise TraceError(f"{where}: score {score} is outside [0, 1]")
            scores.append(float(score))
        elif isinstance(item, dict) and isinstance(item.get("agree"), bool):
            scores.append(1.0 if item["agree"] else 0.0)
        else:
            raise TraceError(f'{where}: expected {{"score": 0.93}} or {{"agree": true}}')
    return scores


def render(result: simulation.SimulationResult, task: str) -> str:
    """The readable timeline: phase changes, training, alarms and rate milestones."""
    out = [f"task {task}: {result.requests} requests", ""]
    out.append(f"{'request':>8} {'compared':>8}  event")
    for event in result.events:
        out.append(f"{event.index:>8} {event.comparisons:>8}  {event.text}")
    conf = "-" if result.final_confidence is None else f"{result.final_confidence:.3f}"
    low = "-" if result.final_lower_bound is None else f"{result.final_lower_bound:.3f}"
    share = result.teacher_calls / result.requests if result.requests else 0.0
    out += [
        "",
        f"teacher calls  {result.teacher_calls} ({share:.1%} of requests)",
        f"comparisons    {result.comparisons}",
        f"graduated at   {'-' if result.graduated_at is None else result.graduated_at}",
        f"final phase    {result.final_phase.value} ({result.final_phase.number})",
        f"final rate     {result.final_sampling_rate:.3f}",
        f"confidence     {conf} (lower bound {low})",
        f"alarms         {len(result.alarms)}",
        f"guarantee      {_guarantee(result)}",
    ]
    return "\n".join(out)


def _guarantee(result: simulation.SimulationResult) -> str:
    """The detection guarantee in words, at the final agreement and rate."""
    if result.detected_within is None:
        return "- (not in steady state: every request is compared)"
    return (
        f"a drop to {result.drop_to:.2f} is detected within {result.detected_within:,} "
        f"requests (95%); max_detection_delay {result.max_detection_delay:,}"
    )


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config.load(args.config)
        params = lifecycle.TaskParams.from_config(cfg, args.task)
    except config.ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"{args.config}: {exc.args[0]}", file=sys.stderr)
        return 1
    if args.training_delay < 0:
        print("--training-delay must be >= 0 requests", file=sys.stderr)
        return 2
    path = Path(args.trace)
    lines = _store_args.read_lines(path, "trace")
    if lines is None:
        return 1
    try:
        scores = parse_trace(lines, str(path))
    except TraceError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    result = simulation.simulate(params, scores, training_delay=args.training_delay, seed=args.seed)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result, params.task))
    return 0
