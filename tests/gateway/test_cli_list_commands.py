"""``apprentice events`` and ``apprentice feedback`` share one listing front
(``commands/_store_args.list_parser`` and ``read_store``): ``--limit N`` keeps the last N,
a limit that is not a positive whole number is refused naming the flag, and a store
that cannot be read is exit 1 saying so. Real SQLite store, the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from gw_config import config_dict

from apprentice import cli
from apprentice.store import EventRecord, RequestRecord, open_store
from apprentice.store.feedback import FeedbackRecord

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _config(tmp_path: Path, store_url: str | None = None) -> str:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, store_url=store_url)))
    return str(path)


def _fill(url: str) -> None:
    with open_store(url) as store:
        for i in range(3):
            at = T0 + timedelta(minutes=i)
            store.add_event(EventRecord(task="classify", at=at, kind="phase", message=f"e{i}"))
            rid = f"r{i}"
            store.record_request(
                RequestRecord(
                    id=rid,
                    task="classify",
                    received_at=at,
                    route="remote_only",
                    served_by="teacher",
                )
            )
            store.add_feedback(FeedbackRecord(task="classify", request_id=rid, at=at, score=i / 2))


def _json(capsys: Any, *argv: str) -> Any:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("command", ["events", "feedback"])
def test_the_listing_commands_share_limit_and_store_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = _config(tmp_path)
    _fill(f"sqlite:///{tmp_path}/apprentice.db")
    base = [command, "-c", path, "--task", "classify", "--json"]
    every = _json(capsys, *base)
    assert len(every) == 3
    assert _json(capsys, *base, "--limit", "2") == every[-2:]  # the last two
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as exited:
            cli.main([*base, "--limit", bad])
        assert exited.value.code == 2
        assert f"argument --limit: must be a positive whole number, got '{bad}'" in (
            capsys.readouterr().err
        )
    garbled = tmp_path / "garbled.db"
    garbled.write_bytes(b"not a database " * 100)
    broken = _config(tmp_path / "elsewhere", f"sqlite:///{garbled}")
    assert cli.main([command, "-c", broken, "--task", "classify"]) == 1
    assert "error: cannot read the store" in capsys.readouterr().err


def test_events_keeps_its_own_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    _fill(f"sqlite:///{tmp_path}/apprentice.db")
    assert _json(capsys, "events", "-c", path, "--json", "--kind", "nope") == []
    messages = [e["message"] for e in _json(capsys, "events", "-c", path, "--json", "--limit", "1")]
    assert messages == ["e2"]
