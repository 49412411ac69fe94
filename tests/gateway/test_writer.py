"""The ordered store writer: order, per-call failures, group commit when offered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apprentice.gateway.writer import StoreWriter


class Recorder:
    def __init__(self, grouped: bool) -> None:
        self.log: list[Any] = []
        self.groups: list[int] = []
        if grouped:
            self.record_requests = self._group

    def record_request(self, request: Any, **rest: Any) -> Any:
        if request == "dup":
            raise ValueError("duplicate request id")
        self.log.append(request)
        return f"ok:{request}"

    def _group(self, writes: list[dict[str, Any]]) -> list[Any]:
        self.groups.append(len(writes))
        out: list[Any] = []
        for w in writes:
            try:
                out.append(self.record_request(w["request"]))
            except ValueError as exc:
                out.append(exc)
        return out


@pytest.mark.parametrize("grouped", [False, True])
async def test_writes_keep_order_and_failures_stay_per_call(grouped: bool) -> None:
    store = Recorder(grouped)
    writer = StoreWriter(store)
    writer.start()
    futures = [writer.submit_request(request=f"r{i}") for i in range(5)]
    futures.append(writer.submit_request(request="dup"))
    futures.append(writer.submit(lambda: store.log.append("state") or "saved"))
    futures.extend(writer.submit_request(request=f"r{i}") for i in range(5, 8))
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[:5] == [f"ok:r{i}" for i in range(5)]
    assert isinstance(results[5], ValueError)
    assert results[6] == "saved"
    assert store.log == ["r0", "r1", "r2", "r3", "r4", "state", "r5", "r6", "r7"]
    if grouped:
        assert store.groups == [6, 3]  # one commit per run of queued requests
    await writer.close()
    with pytest.raises(RuntimeError):
        writer.submit(lambda: None)


@pytest.mark.parametrize("grouped", [False, True])
async def test_a_write_behind_keeps_its_place_and_its_failure_is_logged(
    grouped: bool, caplog: pytest.LogCaptureFixture
) -> None:
    store = Recorder(grouped)
    writer = StoreWriter(store)
    writer.start()
    writer.write_behind("a local-only request", "b0")
    writer.write_behind("a cached answer", "dup")
    waited = writer.submit_request(request="r1")
    writer.write_behind("a local-only request", "b2")
    assert await waited == "ok:r1"
    await writer.close()  # finishes what is queued, written behind included
    assert store.log == ["b0", "r1", "b2"]
    failed = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert failed == ["store write of a cached answer failed: duplicate request id"]
    with pytest.raises(RuntimeError):
        writer.write_behind("a local-only request", "late")


async def test_rows_written_behind_wait_for_company_until_something_is_awaited() -> None:
    store = Recorder(grouped=True)
    writer = StoreWriter(store, linger_s=3600.0)  # only an awaited write can end the wait
    writer.start()
    for i in range(3):
        writer.write_behind("a local-only request", f"b{i}")
        await asyncio.sleep(0)  # the worker runs in between and starts lingering
    assert store.log == []  # nothing committed yet: the rows wait for company
    assert await writer.submit_request(request="paid") == "ok:paid"
    assert store.log == ["b0", "b1", "b2", "paid"] and store.groups == [4]  # one commit
    writer.write_behind("a local-only request", "late")
    await writer.close()  # close does not linger either
    assert store.log[-1] == "late"
