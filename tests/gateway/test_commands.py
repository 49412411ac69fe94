"""The CLI commands: batch (in-process and as a subprocess), versions/promote/rollback, export."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import yaml
from gw_config import config_dict

from apprentice.commands import batch
from apprentice.store import open_store, records


async def test_batch_waits_for_training_deterministically(harness_factory: Any) -> None:
    h = await harness_factory()
    inputs: list[tuple[dict[str, Any] | None, str | None]] = [
        (gw_rules.make_input(i), None) for i in range(60)
    ]
    inputs.insert(5, (None, "line 6: not JSON"))
    out = io.StringIO()
    answered, failed = await batch.run_batch(
        h.app, "classify", inputs, out, concurrency=4, wait_for_training=True
    )
    assert (answered, failed) == (60, 1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 61
    assert lines[5] == {
        "input": None,
        "error": {"type": "bad_request", "message": "line 6: not JSON"},
    }
    good = [line for line in lines if "output" in line]
    assert [line["input"] for line in good] == [gw_rules.make_input(i) for i in range(60)]
    assert all(line["output"] == gw_rules.teacher_output(line["input"]) for line in good)
    # The first run became due at the 20th example (plus the <= 3 others in flight) and
    # trained on exactly the examples the engine had counted then, nothing later.
    v1 = h.gw.store.version("classify", "v1")
    seen = v1.metrics["examples_seen"]
    assert 20 <= seen <= 23
    examples = h.gw.store.examples("classify")
    trained = [e.id for e in examples if e.trained_in_version == "v1"]
    assert trained == [e.id for e in examples[:seen] if e.split == "train"]
    assert v1.metrics["examples_used"] == len(trained)
    assert not h.app.training_due_or_running("classify")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apprentice.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_batch_export_versions_promote_rollback(tmp_path: Path) -> None:
    d = config_dict(tmp_path, task={"confidence_thresholds": {"phase1_to_phase2": 10_000}})
    d["local"] = {**d["local"], "backend": "vllm", "base_url": "http://127.0.0.1:9/v1"}
    cfg = tmp_path / "apprentice.yaml"
    cfg.write_text(yaml.safe_dump(d))
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps(gw_rules.make_input(i)) + "\n" for i in range(30)) + '{"text": 5}\n'
    )
    out = tmp_path / "out.jsonl"
    run = _cli(
        "batch",
        "-c",
        str(cfg),
        "--task",
        "classify",
        "--input",
        str(src),
        "--output",
        str(out),
        "--concurrency",
        "4",
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stderr  # one input failed validation
    assert "30 answered, 1 failed" in run.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 31
    assert lines[-1]["error"]["type"] == "invalid_input"
    assert lines[0]["output"] == gw_rules.teacher_output(gw_rules.make_input(0))

    with open_store(d["store"]["url"]) as store:
        counts = store.example_counts("classify")
        now = datetime.now(UTC)
        for n, rule in ((1, "first_word"), (2, "first_word")):
            path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / f"v{n}", rule)
            store.add_version(
                records.ModelVersionRecord(
                    task="classify",
                    version=f"v{n}",
                    state="candidate",
                    path=str(path),
                    base_model="apprentice/tiny",
                    created_at=now,
                    updated_at=now,
                    heldout_score=0.9 + n / 100,
                )
            )

    for split in ("train", "heldout"):
        target = tmp_path / f"{split}.jsonl"
        run = _cli(
            "export",
            "-c",
            str(cfg),
            "--task",
            "classify",
            "--split",
            split,
            "--format",
            "openai",
            "-o",
            str(target),
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert len(rows) == counts[split]
        assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    run = _cli("export", "-c", str(cfg), "--task", "classify", "--format", "alpaca", cwd=tmp_path)
    assert run.returncode == 0 and len(run.stdout.splitlines()) == counts["train"]
    assert set(json.loads(run.stdout.splitlines()[0])) == {"instruction", "input", "output"}

    assert (
        _cli(
            "promote", "-c", str(cfg), "--task", "classify", "--version", "v1", cwd=tmp_path
        ).returncode
        == 0
    )
    assert (
        _cli(
            "promote", "-c", str(cfg), "--task", "classify", "--version", "v2", cwd=tmp_path
        ).returncode
        == 0
    )
    run = _cli("versions", "-c", str(cfg), "--task", "classify", "--json", cwd=tmp_path)
    body = json.loads(run.stdout)
    assert body["active"] == "v2"
    assert [v["state"] for v in body["versions"]] == ["retired", "promoted"]
    run = _cli("rollback", "-c", str(cfg), "--task", "classify", cwd=tmp_path)
    assert run.returncode == 0 and "active version v1" in run.stdout
    run = _cli("versions", "-c", str(cfg), "--task", "classify", cwd=tmp_path)
    assert "*v1" in run.stdout and "rejected" in run.stdout
    run = _cli("rollback", "-c", str(cfg), "--task", "classify", cwd=tmp_path)
    assert run.returncode == 1 and "no previously promoted version" in run.stderr
    run = _cli("versions", "-c", str(cfg), "--task", "nope", cwd=tmp_path)
    assert run.returncode == 1 and "no task named 'nope'" in run.stderr


def test_serve_without_a_teacher_key_says_how_to_fix(tmp_path: Path) -> None:
    d = config_dict(tmp_path)
    d["remote"] = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5-20250929",
        "api_key_env": "GW_TEST_NO_SUCH_KEY",
    }
    cfg = tmp_path / "apprentice.yaml"
    cfg.write_text(yaml.safe_dump(d))
    run = _cli("serve", "-c", str(cfg), "--port", "0", cwd=tmp_path)
    assert run.returncode == 1
    assert "GW_TEST_NO_SUCH_KEY is not set" in run.stderr
    assert "Traceback" not in run.stderr
