"""The teacher bench's pure parts: the CPU read between two sampled instants (the Go
harness's measured span) and teacher.md's rows, which must say which harness made
which figure and what the harness itself cost."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import teacher_bench  # bench/teacher_bench.py and its siblings, found by the path above
import teacher_gateway
import teacher_in_flight

SAMPLES = [(10.0, 1.0, 5.0), (10.5, 2.0, 5.5), (11.0, 4.0, 6.5)]


def test_cpu_at_an_instant_is_interpolated_between_samples() -> None:
    assert teacher_gateway._at(SAMPLES, 10.25) == pytest.approx((10.25, 1.5, 5.25))
    assert teacher_gateway._at(SAMPLES, 10.75) == pytest.approx((10.75, 3.0, 6.0))
    assert teacher_gateway._at(SAMPLES, 10.5) == SAMPLES[1]


def test_cpu_outside_the_samples_is_the_nearest_one() -> None:
    assert teacher_gateway._at(SAMPLES, 9.0) == SAMPLES[0]
    assert teacher_gateway._at(SAMPLES, 12.0) == SAMPLES[-1]


def gateway(harness: str, p99: float, harness_cpu: float) -> dict[str, Any]:
    cpu = {
        "gateway_cpu_ms_per_request": 0.9,
        "gateway_net_cpu_ms_per_request": 0.899,
        "harness_cpu_ms_per_request": harness_cpu,
        "teacher_cpu_ms_per_request": harness_cpu / 2,
        "client_cpu_ms_per_request": harness_cpu / 2,
    }
    slow = {
        "offered_rps": 1000,
        "requests": 5000,
        "served": 5000,
        "served_rps": 833.0,
        "failed": {},
        "p50_ms": 1010.0,
        "p99_ms": p99,
        **cpu,
    }
    instant = {"rps": 1600.0, "cpu_ms_per_request": 0.6, **cpu}
    return {"harness": harness, "instant": instant, "slow": [slow], "idle_cpu_ms_per_s": 0.2}


def test_teacher_md_names_each_rows_harness_and_its_cpu() -> None:
    out = {
        "when": "2026-11-30 22:00 UTC",
        "machine": "x86_64, 2 CPUs",
        "seconds": 5.0,
        "load_before": [1.0, 1.0, 1.0],
        "load_after": [1.0, 1.0, 1.0],
        "harness": "go",
        "pools": {},
        "gateway": gateway("go", 1040.5, 0.18),
        "gateway_python": gateway("python", 1090.5, 0.36),
    }
    md = teacher_bench.write_md(out)
    go_row = next(line for line in md.splitlines() if "gateway (go harness) |" in line)
    py_row = next(line for line in md.splitlines() if "gateway (python harness) |" in line)
    assert "1040.5 ms" in go_row and "0.18 ms (0.09 + 0.09)" in go_row
    assert "1090.5 ms" in py_row and "0.36 ms (0.18 + 0.18)" in py_row
    assert "| 833.0 |" in go_row  # the achieved rate beside the served count
    assert "bench/loopteacher" in md and "aiohttp teacher in a child process" in md
    assert "used the go harness" in md


def test_a_rate_run_several_times_reports_its_median_run_by_p99_and_every_p99() -> None:
    runs = [{"p99_ms": 1090.0, "n": 1}, {"p99_ms": 1300.0, "n": 2}, {"p99_ms": 1050.0, "n": 3}]
    got = teacher_gateway.median_run(runs)
    assert got["n"] == 1 and got["p99_ms_trials"] == [1090.0, 1300.0, 1050.0]
    assert teacher_gateway._trials(got) == " (median of 1,090.0, 1,300.0, 1,050.0)"
    assert teacher_gateway._trials({"p99_ms": 1.0, "p99_ms_trials": [1.0]}) == ""


def in_flight_row(delay_s: float, cpu: list[float], vs: float) -> dict[str, Any]:
    return {
        "delay_s": delay_s,
        "in_flight": round(1000 * delay_s),
        "served": 5000,
        "requests": 5000,
        "p50_ms": 1000 * delay_s + 10,
        "p99_ms": 1000 * delay_s + 30,
        "cpu_ms_trials": cpu,
        "cpu_ms_median": sorted(cpu)[len(cpu) // 2],
        "cpu_vs_reference": vs,
    }


def test_the_in_flight_section_says_whether_cpu_stayed_within_20_percent() -> None:
    rows = [in_flight_row(0.01, [0.96, 0.95, 0.97], 1.0), in_flight_row(1.0, [1.05], 1.094)]
    md = "\n".join(teacher_in_flight.md_lines(rows, 5.0, "go"))
    assert "| 10 ms | 10 | 5,000 of 5,000 |" in md
    assert "| 1000 ms | 1,000 |" in md and "1.05 ms (1.05) | 1.09x |" in md
    assert "moves at most 9% from its value at 10 calls in flight: within the 20% bound" in md
    rows[1]["cpu_vs_reference"] = 1.25
    md = "\n".join(teacher_in_flight.md_lines(rows, 5.0, "go"))
    assert "moves at most 25% from its value at 10 calls in flight: outside the 20% bound" in md
    assert teacher_in_flight.md_lines([], 5.0, "go") == []
