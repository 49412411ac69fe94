"""The Python facade: async context manager, typed errors, and the sync wrapper."""

from __future__ import annotations

from pathlib import Path

import gw_fakes
import gw_rules
import pytest
from gw_config import make_config, trainer

from apprentice.gateway import errors
from apprentice.gateway.facade import Apprentice, SyncApprentice


async def test_async_facade_answers_and_raises_typed_errors(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    async with Apprentice.from_config(
        cfg, student_factory=lambda _t: gw_fakes.RuleStudent(), trainer_command=trainer()
    ) as app:
        inp = gw_rules.make_input(1)
        result = await app.run("classify", inp)
        assert result.output == gw_rules.teacher_output(inp)
        assert app.task_names() == ["classify"]
        assert app.engine_state("classify").phase_name() == "cold_start"
        with pytest.raises(errors.UnknownTask):
            await app.run("nope", inp)
        with pytest.raises(errors.InvalidInput) as info:
            await app.run("classify", {"text": 1})
        assert info.value.details == [{"path": "text", "message": "1 is not of type 'string'"}]
        status = await app.status("classify")
        assert status["requests"] == 1
    assert app.gateway.store is not None  # closed, but the reference stays for the caller


def test_sync_wrapper_for_scripts(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    with SyncApprentice(
        cfg, student_factory=lambda _t: gw_fakes.RuleStudent(), trainer_command=trainer()
    ) as app:
        for i in range(3):
            inp = gw_rules.make_input(i)
            assert app.run("classify", inp).output == gw_rules.teacher_output(inp)
        assert app.status("classify")["teacher_calls"] == 3
        with pytest.raises(errors.UnknownTask):
            app.run("nope", {})


def test_sync_wrapper_reports_startup_errors(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        remote={
            "provider": "openai",
            "model": "gpt-4o",
            "api_key_env": "GW_TEST_MISSING_KEY",
            "path": None,
            "price_as": None,
        },
    )
    with pytest.raises(errors.StartupError, match="GW_TEST_MISSING_KEY"):
        SyncApprentice(cfg)
