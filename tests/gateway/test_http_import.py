"""``apprentice import`` end to end: the real CLI in a subprocess writes the store, then a
real gateway over HTTP shows phase 1 ending on imported examples, with no teacher call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gw_rules
import yaml
from gw_config import config_dict

from apprentice import config
from apprentice.store import assign_split, input_hash


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "apprentice.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _lines(n: int) -> list[str]:
    good = [
        json.dumps({"input": gw_rules.make_input(i), "output": gw_rules.teacher_output(inp)})
        for i in range(n)
        if (inp := gw_rules.make_input(i))
    ]
    chat = {
        "messages": [
            {"role": "system", "content": "label it"},
            {"role": "user", "content": json.dumps(gw_rules.make_input(n))},
            {"role": "assistant", "content": json.dumps(gw_rules.teacher_output(gw_rules.make_input(n)))},
        ]
    }  # fmt: skip
    bad = [
        "{not json",  # n + 2
        json.dumps({"input": {"text": "a b"}}),  # n + 3: no output
        json.dumps({"input": {"text": 5}, "output": {"label": "x"}}),  # n + 4
        json.dumps({"input": {"text": "zz top"}, "output": {"label": 7}}),  # n + 5
        good[0],  # n + 6: the same input as line 1
        "[1, 2]",  # n + 7
    ]
    return [*good, json.dumps(chat), "", *bad]


async def test_import_ends_cold_start_without_the_teacher(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))  # phase1_to_phase2: 20
    data = tmp_path / "past_calls.jsonl"
    n = 30
    data.write_text("\n".join(_lines(n)) + "\n")

    done = _cli("import", "-c", str(path), "--task", "classify", str(data), "--json")
    assert done.returncode == 3, done.stderr  # some lines rejected
    report = json.loads(done.stdout)
    assert report["imported"] == n + 1 and report["duplicates"] == 0
    assert sum(report["splits"].values()) == n + 1 and report["splits"]["heldout"] > 0
    reasons = {r["line"]: r["reason"] for r in report["rejected"]}
    assert sorted(reasons) == [n + 3, n + 4, n + 5, n + 6, n + 7, n + 8]
    assert reasons[n + 3].startswith("not JSON")
    assert "missing 'output'" in reasons[n + 4]
    assert "input_schema" in reasons[n + 5] and "text" in reasons[n + 5]
    assert "output_schema" in reasons[n + 6] and "label" in reasons[n + 6]
    assert reasons[n + 7] == "duplicate input: the same as line 1"
    assert "JSON object" in reasons[n + 8]

    again = _cli("import", "-c", str(path), "--task", "classify", str(data))
    assert again.returncode == 3
    assert f"0 examples imported into classify (train 0, heldout 0); {n + 1} duplicates" in (
        again.stdout
    )
    assert "line 1: duplicate input: already in the store" in again.stdout
    missing = _cli("import", "-c", str(path), "--task", "nope", str(data))
    assert missing.returncode == 1 and "nope" in missing.stderr
    absent = _cli("import", "-c", str(path), "--task", "classify", str(tmp_path / "none.jsonl"))
    assert absent.returncode == 1 and "cannot read the import file" in absent.stderr

    h = await harness_factory(config.load(path))
    client = await h.serve()
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "cold_start"
    assert state["examples"]["train"] + state["examples"]["heldout"] == n + 1
    assert h.app.training_due_or_running("classify")
    await h.app.wait_for_training_idle("classify")
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "reinforcement" and state["active_version"] == "v1"
    assert state["teacher_calls"] == 0 and state["requests"] == 0
    assert state["spend"]["today"] == 0
    assert {e.teacher_provider for e in h.gw.store.examples("classify")} == {"import"}
    # The split rule is the teacher examples' rule: the same input, the same split.
    for e in h.gw.store.examples("classify"):
        assert e.split == assign_split(input_hash(e.input), 0.2)
