"""Feedback on served answers (``POST /v1/feedback``): corrections and scores.

A **correction** (``output``) is validated against the task's output schema (422
``invalid_correction`` naming each path) and becomes the input's training example
with provenance ``human``: it replaces the label the input had (the teacher's, or an
imported one), so the training selection, the held-out evaluation and the exports'
DPO ``chosen`` all use it; the split is the input's own (the split rule), so a
held-out input stays held out. The served answer is scored against it by the task's
evaluator (the judge's spend reserved and settled as on the request path) and kept
on the feedback row as ``agreement``. When the student served, that is also a
comparison (``details.source = "feedback"``, the student's answer kept for DPO) and
one observation for the confidence engine, like a sampled comparison.

A **score** in [0, 1] is stored and shown; on a student answer it is that
comparison's score (and the engine's observation).

Where the input comes from: the request's own row (:meth:`Store.request_record`)
holds what it was asked and answered, written with the request (the commit step, the
answer cache), so a correction works on any replica on the store, after any restart.
Only a request that got no answer, or one recorded before the store kept them (schema
version 10), has none: for such an old teacher answer the input is read from the example
it added; a correction on any other is a 409 ``feedback_unavailable`` saying which; a
score needs neither.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apprentice.gateway import errors, judging
from apprentice.gateway.service import Gateway
from apprentice.gateway.tasks import ServedTask
from apprentice.store import Store, records
from apprentice.store.feedback import HUMAN, FeedbackRecord

__all__ = ["Feedback", "Given"]

CHAT_PREFIX = "chatcmpl-"
"""A chat completion's ``id`` is this and the request id (:mod:`apprentice.gateway.chat`)."""


@dataclass(frozen=True, slots=True)
class Served:
    """What a caller sent and got: enough to turn a correction into an example."""

    input: dict[str, Any]
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Given:
    """A feedback body, already checked for shape (exactly one of output and score)."""

    request_id: str
    output: dict[str, Any] | None
    score: float | None
    comment: str | None
    caller: str | None


def _unavailable(request: records.RequestRecord) -> errors.FeedbackUnavailable:
    """409 for a correction on a request whose input and answer the store does not hold."""
    if request.served_by is None:
        why = f"got no answer ({request.error or 'failed'}), so nothing was kept to correct"
    else:
        why = (
            "was recorded before the store kept each request's input and answer (schema "
            "version 10), so a correction cannot become an example"
        )
    return errors.FeedbackUnavailable(
        f"request {request.id!r} {why}; send a score for it instead",
        details={"request_id": request.id},
    )


class Feedback:
    """Turns one :class:`Given` into the store's rows and the engine's observation."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def request(self, request_id: str) -> records.RequestRecord:
        """The recorded request (404 ``unknown_request`` when none, pruned by the
        retention, or of no served task);
        a chat completion's ``id`` (``chatcmpl-<request id>``) names its request too."""
        await self.gw.flush()  # a local-only answer commits a moment after it is sent
        store: Store = self.gw.store
        rid = request_id.removeprefix(CHAT_PREFIX)
        found = await asyncio.to_thread(store.request_record, rid)
        if found is None or found.task not in self.gw.tasks:
            raise errors.UnknownRequest(request_id, self.gw.config.store.request_retention_days)
        return found

    async def submit(self, given: Given, request: records.RequestRecord) -> dict[str, Any]:
        """Store ``given`` for ``request`` (already authorised); the answer's JSON body."""
        task = self.gw.check_task(request.task)
        now = datetime.now(UTC)
        served = await self._served(request)
        example, evaluation, spend = None, None, []
        if given.output is not None:
            problems = task.schemas.output.errors(given.output)
            if problems:
                raise errors.InvalidCorrection(
                    "output does not match the task's output_schema: "
                    + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5]),
                    details=problems,
                )
            if served is None:
                raise _unavailable(request)
            example = self._example(task, served.input, given.output, request.id, now)
            evaluation, line = await judging.evaluate_reserved(
                self.gw.budget, task, served.output, given.output, served.input, request.id, now
            )
            spend = [] if line is None else [line]
        agreement = None if evaluation is None else evaluation.score
        observed = given.score if given.output is None else agreement
        comparison = None
        if request.served_by == "student" and observed is not None:
            details: dict[str, Any] = {"source": "feedback"}
            if evaluation is not None:
                details.update(evaluation.details)
            if given.output is not None and served is not None:
                details["student_output"] = served.output  # DPO: rejected beside the human's
            comparison = self._comparison(task, request, observed, details, now)
            task.engine.observe(observed, now)
        record = FeedbackRecord(
            task=task.name, request_id=request.id, at=now, output=given.output,
            score=given.score, comment=given.comment, caller=given.caller,
            served_by=request.served_by, agreement=agreement,
        )  # fmt: skip
        fid, added = await self._write(task, record, example, comparison, spend)
        if added and example is not None:
            task.count_example(example.split)
            task.engine.add_example(1)
        return {
            "id": fid,
            "request_id": request.id,
            "task": task.name,
            "kind": "correction" if given.output is not None else "score",
            "agreement": agreement,
            "example": None if example is None else {"provenance": HUMAN, "split": example.split},
        }

    async def _served(self, request: records.RequestRecord) -> Served | None:
        """The request's input and served answer, from its row; for a teacher answer
        recorded before the row kept them, from the example it added."""
        if request.input is not None and request.output is not None:
            return Served(request.input, request.output)
        if request.served_by != "teacher":
            return None  # recorded before the store kept inputs: nothing else holds it
        example = await asyncio.to_thread(self.gw.store.request_example, request.id)
        return None if example is None else Served(example.input, example.output)

    @staticmethod
    def _example(
        task: ServedTask,
        task_input: dict[str, Any],
        output: dict[str, Any],
        rid: str,
        now: datetime,
    ) -> records.ExampleRecord:
        digest = records.input_hash(task_input)
        return records.ExampleRecord(
            task=task.name, input=task_input, output=output, input_hash=digest,
            split=records.assign_split(digest, task.heldout_fraction),
            teacher_provider=HUMAN, teacher_model=None, created_at=now, request_id=rid,
        )  # fmt: skip

    @staticmethod
    def _comparison(
        task: ServedTask,
        request: records.RequestRecord,
        score: float,
        details: dict[str, Any],
        now: datetime,
    ) -> records.ComparisonRecord:
        engine = task.engine
        return records.ComparisonRecord(
            task=task.name, request_id=request.id, at=now, score=score, details=details,
            student_version=request.student_version, phase=engine.phase_name(),
            sampling_rate=None,
        )  # fmt: skip

    async def _write(
        self,
        task: ServedTask,
        record: FeedbackRecord,
        example: records.ExampleRecord | None,
        comparison: records.ComparisonRecord | None,
        spend: list[records.SpendRecord],
    ) -> tuple[int, bool]:
        """One transaction, queued behind the request writes (so engine states stay ordered)."""
        store = self.gw.store
        state = None if comparison is None else task.engine.to_json()

        def write() -> tuple[int, bool]:
            result: tuple[int, bool] = store.add_feedback(
                record, example=example, comparison=comparison, spend=spend, task_state=state
            )
            return result

        if comparison is not None:
            self.gw.control.write_events(task)  # phase changes the observation made
        if self.gw.parts.writer.running:
            result: tuple[int, bool] = await self.gw.parts.writer.submit(write)
            return result
        return await asyncio.to_thread(write)
