"""Many rows in a few statements: what a group commit writes, read and deleted in bulk.

Why: the gateway's writer runs a group commit (:mod:`apprentice.store.batches`) on a
thread while the event loop keeps serving. On SQLite every statement step, and every
row fetched, releases the GIL around the C call and then waits to take it back from
the busy loop (up to the switch interval). At 1,000 paid requests/s, with ~10 steps a
request and its reservation, the writer spent about two thirds of its time waiting
for the GIL, fell behind, and the queue showed as 100-200 ms at p99 in front of the
reservations and the answers (bench/teacher_bench.py, the 1 s teacher). So a batch's
rows go in multi-row statements (:meth:`~apprentice.store.sqlcore.Tx.insert_rows`),
lookups answer in one aggregated row, and the statements per batch no longer grow
with its size. On PostgreSQL each saved statement is a saved round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

from apprentice.prompts import canonical_json
from apprentice.store import codec, schema
from apprentice.store.records import ExampleRecord
from apprentice.store.sqlcore import Tx

UNIT, RECORD = "\x1f", "\x1e"
"""Separators of the aggregated rows (ids and hashes never hold control characters)."""
IN_LIMIT = 900
"""Values in one ``IN (...)`` list (SQLite's oldest limit is 999 values a statement)."""

EXAMPLE_COLUMNS = (
    "task, input, output, input_hash, split, teacher_provider, teacher_model, created_at,"
    " cost, request_id, weight, trained_in_version"
)


def example_values(
    e: ExampleRecord, canonical: codec.Canonical = canonical_json
) -> tuple[object, ...]:
    """``e`` as the values of ``EXAMPLE_COLUMNS``."""
    return (
        e.task, canonical(e.input), canonical(e.output), e.input_hash, e.split,
        e.teacher_provider, e.teacher_model, codec.to_micros(e.created_at), float(e.cost),
        e.request_id, float(e.weight), e.trained_in_version,
    )  # fmt: skip


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + IN_LIMIT] for i in range(0, len(values), IN_LIMIT)]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def existing(
    tx: Tx, dialect: schema.Dialect, table: str, column: str, values: Sequence[str]
) -> set[str]:
    """Which of ``values`` are in ``table.column``: one row a chunk, whatever it finds."""
    found: set[str] = set()
    for chunk in _chunks(list(dict.fromkeys(values))):
        row = tx.one(
            f"SELECT {dialect.text_agg}(CAST({column} AS TEXT), ?) FROM {table}"
            f" WHERE {column} IN ({_marks(chunk)})",
            (UNIT, *chunk),
        )
        if row is not None and row[0]:
            found.update(str(row[0]).split(UNIT))
    return found


def delete(tx: Tx, table: str, column: str, values: Sequence[str]) -> None:
    """Delete the rows whose ``column`` is one of ``values`` (none: no statement)."""
    for chunk in _chunks(values):
        tx.execute(f"DELETE FROM {table} WHERE {column} IN ({_marks(chunk)})", chunk)


def insert_examples(
    tx: Tx,
    dialect: schema.Dialect,
    examples: Sequence[ExampleRecord],
    canonical: codec.Canonical = canonical_json,
) -> list[tuple[int, bool]]:
    """Insert ``examples`` in order; each one's id and whether it was added.

    As inserting them one by one would: an input already stored for its task (before,
    or earlier in ``examples``) is not added and answers the stored example's id. The
    stored rows are read back in one aggregated row a task, and an example is "added"
    when the row holding its input carries its request id. So each example must carry
    the id of the request written with it (unique, and new to the store: a request id
    recorded twice fails); the caller checks (``RequestRows._insert_examples``).
    """
    if not examples:
        return []
    tx.insert_rows(
        f"INSERT INTO examples ({EXAMPLE_COLUMNS})",
        [example_values(e, canonical) for e in examples],
        " ON CONFLICT (task, input_hash) DO NOTHING",
    )
    stored: dict[tuple[str, str], tuple[int, str]] = {}
    hashes: dict[str, list[str]] = {}
    for e in examples:
        hashes.setdefault(e.task, []).append(e.input_hash)
    for task, task_hashes in hashes.items():
        for chunk in _chunks(list(dict.fromkeys(task_hashes))):
            row = tx.one(
                f"SELECT {dialect.text_agg}(input_hash || ? || CAST(id AS TEXT) || ? ||"
                f" COALESCE(request_id, ''), ?) FROM examples"
                f" WHERE task = ? AND input_hash IN ({_marks(chunk)})",
                (UNIT, UNIT, RECORD, task, *chunk),
            )
            for record in str(row[0]).split(RECORD) if row is not None and row[0] else ():
                input_hash, stored_id, request_id = record.split(UNIT, 2)
                stored[(task, input_hash)] = (int(stored_id), request_id)
    out: list[tuple[int, bool]] = []
    for e in examples:
        example_id, by = stored[(e.task, e.input_hash)]
        out.append((example_id, by == (e.request_id or "")))
    return out
