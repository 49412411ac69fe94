"""API key rows and imported examples on both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apprentice.store import ExampleRecord, assign_split, input_hash, open_store
from apprentice.store.api_keys import ApiKeyRecord

NOW = datetime(2025, 3, 10, tzinfo=UTC)


def _example(text: str) -> ExampleRecord:
    task_input = {"text": text}
    digest = input_hash(task_input)
    return ExampleRecord(
        task="t",
        input=task_input,
        output={"label": text.split()[0]},
        input_hash=digest,
        split=assign_split(digest, 0.2),
        teacher_provider="import",
        teacher_model=None,
        created_at=NOW,
    )


def test_keys_round_trip_and_revoke_once(store_url: str) -> None:
    key = ApiKeyRecord("0123456789ab", "f" * 64, ("t", "u"), "ci", NOW)
    with open_store(store_url) as store:
        store.add_api_key(key)
        store.add_api_key(ApiKeyRecord("ba9876543210", "e" * 64, ("u",), None, NOW))
        assert store.api_key("0123456789ab") == key
        assert store.api_key("000000000000") is None
        assert [k.id for k in store.api_keys()] == ["0123456789ab", "ba9876543210"]
        revoked = store.revoke_api_key("0123456789ab", NOW + timedelta(hours=1))
        assert revoked is not None and revoked.revoked_at == NOW + timedelta(hours=1)
        again = store.revoke_api_key("0123456789ab", NOW + timedelta(hours=2))
        assert again is not None and again.revoked_at == NOW + timedelta(hours=1)
        assert store.revoke_api_key("000000000000", NOW) is None
        assert not store.api_key("ba9876543210").revoked  # type: ignore[union-attr]
        limited = ApiKeyRecord("00000000beef", "d" * 64, ("t",), None, NOW, rate_per_s=2.5)
        store.add_api_key(limited)
        assert store.api_key("00000000beef") == limited


def test_add_examples_collapses_duplicates_without_a_request(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.add_examples([_example("a b"), _example("c d")]) == [True, True]
        assert store.add_examples([_example("a b"), _example("e f")]) == [False, True]
        kept = store.examples("t")
        assert [e.input["text"] for e in kept] == ["a b", "c d", "e f"]
        assert {e.teacher_provider for e in kept} == {"import"}
        assert sum(store.example_counts("t").values()) == 3
        assert store.request_counts("t").requests == 0
