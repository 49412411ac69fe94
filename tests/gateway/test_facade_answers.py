"""The facade's caller may reuse its dicts at once: a local answer returns before its
request row (which keeps the input and the answer, for feedback) is written, so the
gateway works on its own copies and the row holds what was asked and answered."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from gw_config import make_config
from test_http_feedback import _steady

from apprentice.gateway import errors


async def test_a_caller_changing_its_dicts_after_the_answer_changes_no_row(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    _steady(cfg, tmp_path, "last_word")
    h = await harness_factory(cfg)
    asked = {"text": ""}  # one dict, reused for every request as a loop might
    sent: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for i in range(40):
        asked["text"] = gw_rules.make_input(i)["text"]
        result = await h.app.run("classify", asked)
        sent[result.request_id] = (copy.deepcopy(asked), copy.deepcopy(result.output))
        result.output["label"] = "changed by the caller"  # before the row is written
    asked["text"] = "changed by the caller"
    await h.gw.flush()
    local = 0
    for rid, (task_input, output) in sent.items():
        row = h.gw.store.request_record(rid)
        assert row is not None and (row.input, row.output) == (task_input, output)
        local += row.route == "local_only"
    assert local > 0  # answers that returned before their row was written


async def test_the_facade_checks_and_copies_an_input_in_one_walk(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    _steady(cfg, tmp_path, "last_word")  # the student answers any input
    h = await harness_factory(cfg)
    asked = {"text": "café 😀 ok"}  # not ASCII, valid: accepted, stored as asked
    result = await h.app.run("classify", asked)
    await h.gw.flush()
    row = h.gw.store.request_record(result.request_id)
    assert row is not None and row.input == {"text": "café 😀 ok"}
    with pytest.raises(errors.BadRequest, match=r"input: the string at <root> .*surrogate"):
        await h.app.run("classify", {"text": "a", "b\udfff": "c"})  # a key, as HTTP checks
    nested: Any = []
    for _ in range(63):
        nested = [nested]
    # 64 levels deep is as deep as the store takes: past the boundary, refused by the schema
    with pytest.raises(errors.InvalidInput):
        await h.app.run("classify", {"text": "a", "x": nested})
    with pytest.raises(errors.BadRequest, match="nested deeper than 64"):
        await h.app.run("classify", {"text": "a", "x": [nested]})
