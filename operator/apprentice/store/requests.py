"""The request transaction and everything counted from it: examples, comparisons, spend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from apprentice.prompts import canonical_json
from apprentice.store import budget, bulk, codec
from apprentice.store.base import DuplicateRequestError
from apprentice.store.records import (
    ComparisonRecord,
    ExampleRecord,
    RecordResult,
    RequestCounts,
    RequestRecord,
    RequestWrite,
    SpendKind,
    SpendRecord,
    Split,
)
from apprentice.store.sqlcore import SqlCore, Tx

_REQUEST_ROW = f"{codec.REQUEST_COLUMNS}, {codec.ANSWER_COLUMNS}"  # codec.request_values
_REQUEST_HEAD = f"INSERT INTO requests ({_REQUEST_ROW})"
_INSERT_REQUEST = f"{_REQUEST_HEAD} VALUES ({', '.join('?' * 15)})"
_EXAMPLE_COLUMNS = f"{bulk.EXAMPLE_COLUMNS}, id"  # codec.example
_COMPARISON_COLUMNS = (
    "task, request_id, at, score, details, student_version, phase, sampling_rate, id"
)
_SPEND_COLUMNS = (
    "task, at, amount, kind, request_id, provider, model, input_tokens, output_tokens, id, caller"
)


_COUNTERS = ("requests", "teacher_calls", "student_answers", "errors", "comparisons", "cache_hits")
_BUMP = (
    f"INSERT INTO task_counters (task, {', '.join(_COUNTERS)})"
    f" VALUES (?{', ?' * len(_COUNTERS)}) ON CONFLICT (task) DO UPDATE SET "
    + ", ".join(f"{c} = task_counters.{c} + excluded.{c}" for c in _COUNTERS)
)


def _counts(request: RequestRecord, comparison: ComparisonRecord | None) -> tuple[int, ...]:
    """What one request adds to its task's counters, in ``_COUNTERS`` order."""
    served = request.served_by
    return (
        1,
        int(request.teacher_called),
        int(served == "student"),
        int(request.error is not None),
        int(comparison is not None),
        int(served == "cache"),
    )


_NOTHING_ELSE = RecordResult(example_id=None, example_added=False, comparison_id=None)
"""A request row written alone: no example, no comparison (immutable, so shared)."""


def _count(
    counts: dict[str, list[int]], request: RequestRecord, comparison: ComparisonRecord | None
) -> None:
    """Add one written request's counters to its task's totals in ``counts``."""
    totals = counts.setdefault(request.task, [0] * len(_COUNTERS))
    for i, n in enumerate(_counts(request, comparison)):
        totals[i] += n


def _bump(tx: Tx, counts: dict[str, list[int]]) -> None:
    """The counters of every request written in ``tx``: one upsert per task, not per request
    (a group commit of a hundred local answers updates the row once)."""
    for task, totals in counts.items():
        tx.execute(_BUMP, (task, *totals))


class RequestRows(SqlCore):
    """Requests, examples, comparisons, spend and the per-hour series."""

    # -- the request transaction --------------------------------------------------------------

    def record_request(
        self,
        request: RequestRecord,
        *,
        example: ExampleRecord | None = None,
        comparison: ComparisonRecord | None = None,
        spend: Sequence[SpendRecord] = (),
        task_state: dict[str, Any] | None = None,
        shadow: ComparisonRecord | None = None,
    ) -> RecordResult:
        with self._write() as tx:
            if spend:  # the budget lock first, as every budget transaction (no deadlock)
                budget.lock(tx, self.dialect)
            counts: dict[str, list[int]] = {}
            result = self._record(
                tx, request, example, comparison, spend, task_state, counts, shadow
            )
            _bump(tx, counts)
            return result

    def _write_requests(
        self, tx: Tx, batch: Sequence[RequestWrite], isolated: bool
    ) -> list[RecordResult | Exception]:
        """Every request transaction of a group commit (:mod:`apprentice.store.batches`) in ``tx``.

        Optimistic (``isolated`` False): in bulk (:meth:`_record_all`), no savepoints, as
        PostgreSQL slows down sharply past 64 subtransactions in one transaction and a
        failing write is rare; a failure raises. Isolated: each write in its own
        savepoint, so one that fails is rolled back alone and its exception returned in
        its place.
        """
        counts: dict[str, list[int]] = {}
        if not isolated:
            done = self._record_all(tx, batch, counts)
            _bump(tx, counts)
            return done
        results: list[RecordResult | Exception] = []
        for write in batch:
            tx.execute("SAVEPOINT request_write")
            mine: dict[str, list[int]] = {}
            try:
                with self._translated():
                    results.append(self._record_write(tx, write, mine))
            except Exception as error:
                tx.execute("ROLLBACK TO SAVEPOINT request_write")
                results.append(error)
            else:
                for task, totals in mine.items():
                    into = counts.setdefault(task, [0] * len(_COUNTERS))
                    counts[task] = [a + b for a, b in zip(into, totals, strict=True)]
            tx.execute("RELEASE SAVEPOINT request_write")
        _bump(tx, counts)
        return results

    def _record_all(
        self, tx: Tx, batch: Sequence[RequestWrite], counts: dict[str, list[int]]
    ) -> list[RecordResult | Exception]:
        """Every write of ``batch`` in a few statements (:mod:`apprentice.store.bulk` says
        why): the request rows, the examples (see :meth:`_insert_examples`), the spend
        lines and each task's last engine state in bulk, the (sampled) comparisons one by
        one. The same rows as writing each in turn: a comparison names a request already
        written, and only a task's last state is kept either way."""
        requests: list[RequestRecord] = [write["request"] for write in batch]
        once = codec.CanonicalOnce()  # an example's input and output are its request's
        tx.insert_rows(_REQUEST_HEAD, [codec.request_values(r, once) for r in requests])
        stored = iter(self._insert_examples(tx, batch, requests, once))
        done: list[RecordResult | Exception] = []
        states: dict[str, tuple[dict[str, Any], datetime]] = {}
        for write, request in zip(batch, requests, strict=True):
            comparison = write.get("comparison")
            comparison_id = None if comparison is None else self._insert_comparison(tx, comparison)
            if (shadow := write.get("shadow")) is not None:
                self._insert_comparison(tx, shadow)
            _count(counts, request, comparison)
            if (state := write.get("task_state")) is not None:
                states[request.task] = (state, request.received_at)
            if write.get("example") is None and comparison_id is None:
                done.append(_NOTHING_ELSE)
                continue
            example_id, added = next(stored) if write.get("example") is not None else (None, False)
            done.append(RecordResult(example_id, added, comparison_id))
        budget.insert_spend(tx, self.dialect, [s for w in batch for s in w.get("spend", ())])
        for task, (state, at) in states.items():
            self._upsert_state(tx, task, state, at)
        return done

    def _insert_examples(
        self,
        tx: Tx,
        batch: Sequence[RequestWrite],
        requests: Sequence[RequestRecord],
        canonical: codec.Canonical,
    ) -> list[tuple[int, bool]]:
        """The batch's examples, in order: each one's id and whether it was added."""
        pairs: list[tuple[ExampleRecord, RequestRecord]] = [
            (e, r)
            for w, r in zip(batch, requests, strict=True)
            if (e := w.get("example")) is not None
        ]
        examples = [e for e, _ in pairs]
        if all(e.request_id == r.id for e, r in pairs):  # the gateway's: each its request's own
            return bulk.insert_examples(tx, self.dialect, examples, canonical)
        # An example without a request id, or naming another request: the bulk read-back
        # cannot tell the row it wrote from one stored before, so one at a time.
        return [self._insert_example(tx, e) for e in examples]

    def _record_write(
        self, tx: Tx, write: RequestWrite, counts: dict[str, list[int]]
    ) -> RecordResult:
        return self._record(
            tx,
            write["request"],
            write.get("example"),
            write.get("comparison"),
            write.get("spend", ()),
            write.get("task_state"),
            counts,
            write.get("shadow"),
        )

    def _record(
        self,
        tx: Tx,
        request: RequestRecord,
        example: ExampleRecord | None,
        comparison: ComparisonRecord | None,
        spend: Sequence[SpendRecord],
        task_state: dict[str, Any] | None,
        counts: dict[str, list[int]],
        shadow: ComparisonRecord | None = None,
    ) -> RecordResult:
        """One request's rows; its counters are added to ``counts`` (see :func:`_bump`)."""
        self._insert_request(tx, request)
        example_id, added = (None, False)
        if example is not None:
            example_id, added = self._insert_example(tx, example)
        comparison_id = None
        if comparison is not None:
            comparison_id = self._insert_comparison(tx, comparison)
        if shadow is not None:  # a shadow candidate's answer, scored (not counted as sampled)
            self._insert_comparison(tx, shadow)
        self._insert_spend(tx, spend)
        _count(counts, request, comparison)
        if task_state is not None:
            self._upsert_state(tx, request.task, task_state, request.received_at)
        return RecordResult(example_id=example_id, example_added=added, comparison_id=comparison_id)

    def _insert_request(self, tx: Tx, r: RequestRecord) -> None:
        try:
            tx.execute(_INSERT_REQUEST, codec.request_values(r))
        except Exception as error:
            if self._is_unique_violation(error):
                raise DuplicateRequestError(
                    f"request {r.id!r} of task {r.task!r} is already recorded; request ids "
                    "must be unique"
                ) from error
            raise

    def _insert_example(self, tx: Tx, e: ExampleRecord) -> tuple[int, bool]:
        row = tx.one(
            f"INSERT INTO examples ({bulk.EXAMPLE_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (task, input_hash) DO NOTHING RETURNING id",
            bulk.example_values(e),
        )
        if row is not None:
            return int(row[0]), True
        existing = tx.one(
            "SELECT id FROM examples WHERE task = ? AND input_hash = ?", (e.task, e.input_hash)
        )
        assert existing is not None  # the conflict above proves the row exists
        return int(existing[0]), False

    def _insert_comparison(self, tx: Tx, c: ComparisonRecord) -> int:
        row = tx.one(
            "INSERT INTO comparisons (task, request_id, at, score, details, student_version,"
            " phase, sampling_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                c.task,
                c.request_id,
                codec.to_micros(c.at),
                float(c.score),
                canonical_json(c.details),
                c.student_version,
                c.phase,
                c.sampling_rate,
            ),
        )
        assert row is not None
        return int(row[0])

    def _insert_spend(self, tx: Tx, entries: Sequence[SpendRecord]) -> None:
        budget.insert_spend(tx, self.dialect, entries)

    def record_spend(self, entries: Sequence[SpendRecord]) -> None:
        with self._write() as tx:
            self._insert_spend(tx, entries)

    # -- examples -----------------------------------------------------------------------------

    def examples(
        self,
        task: str,
        split: Split | None = None,
        limit: int | None = None,
        after_id: int | None = None,
    ) -> list[ExampleRecord]:
        where: list[str] = ["task = ?"]
        params: list[Any] = [task]
        if split is not None:
            where.append("split = ?")
            params.append(split)
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        sql = f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as tx:
            rows = tx.all(sql, params)
        return [codec.example(row) for row in rows]

    def add_examples(self, examples: Sequence[ExampleRecord]) -> list[bool]:
        with self._write() as tx:
            return [self._insert_example(tx, e)[1] for e in examples]

    def example_counts(self, task: str) -> dict[Split, int]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT split, COUNT(*) FROM examples WHERE task = ? GROUP BY split", (task,)
            )
        counts: dict[Split, int] = {"train": 0, "heldout": 0}
        for split, count in rows:
            counts[cast(Split, split)] = int(count)
        return counts

    def mark_trained(self, task: str, ids: Iterable[int], version: str) -> int:
        marked = 0
        id_list = [int(i) for i in ids]
        with self._write() as tx:
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                marked += tx.execute(
                    "UPDATE examples SET trained_in_version = ? WHERE task = ?"
                    f" AND trained_in_version IS NULL AND id IN ({marks})",
                    (version, task, *chunk),
                )
        return marked

    # -- comparisons, requests, spend ---------------------------------------------------------

    def comparisons(
        self, task: str, since: datetime | None = None, limit: int | None = None
    ) -> list[ComparisonRecord]:
        rows = self._tail("comparisons", _COMPARISON_COLUMNS, "at", "id", task, since, limit)
        return [codec.comparison(row) for row in rows]

    def requests(
        self, task: str, since: datetime | None = None, limit: int | None = None
    ) -> list[RequestRecord]:
        # Without input and output (codec.REQUEST_COLUMNS): a report reads many rows.
        rows = self._tail(
            "requests", codec.REQUEST_COLUMNS, "received_at", "id", task, since, limit
        )
        return [codec.request(row) for row in rows]

    def request_counts(self, task: str) -> RequestCounts:
        with self._read() as tx:
            row = tx.one(
                "SELECT requests, teacher_calls, student_answers, errors, comparisons,"
                " cache_hits FROM task_counters WHERE task = ?",
                (task,),
            )
        if row is None:
            return RequestCounts()
        return RequestCounts(*(int(v) for v in row))

    def spend_entries(
        self, task: str | None = None, since: datetime | None = None
    ) -> list[SpendRecord]:
        rows = self._tail("spend", _SPEND_COLUMNS, "at", "id", task, since, None)
        return [codec.spend(row) for row in rows]

    def spend_total(
        self,
        start: datetime,
        end: datetime,
        *,
        task: str | None = None,
        kind: SpendKind | None = None,
    ) -> float:
        where: list[str] = ["at >= ?", "at < ?"]
        params: list[Any] = [codec.to_micros(start), codec.to_micros(end)]
        if task is not None:
            where.append("task = ?")
            params.append(task)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        with self._read() as tx:
            row = tx.one(f"SELECT SUM(amount) FROM spend WHERE {' AND '.join(where)}", params)
        return float(row[0]) if row and row[0] is not None else 0.0

    def spend_by_task(self, start: datetime, end: datetime) -> dict[str, float]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT task, SUM(amount) FROM spend WHERE at >= ? AND at < ?"
                " AND task IS NOT NULL GROUP BY task",
                (codec.to_micros(start), codec.to_micros(end)),
            )
        return {str(task): float(total) for task, total in rows}
