"""The shared vocabulary: each word list is defined once and every spelling agrees."""

from __future__ import annotations

from typing import get_args, get_type_hints

import pytest

from apprentice import vocabulary as v
from apprentice.docs_reference import http_api
from apprentice.engine import lifecycle
from apprentice.gateway import errors
from apprentice.kube import status_models
from apprentice.reporting import status
from apprentice.store import records


def test_literals_and_enums_name_the_same_words() -> None:
    assert get_args(v.PhaseName) == v.PHASES == tuple(p.value for p in v.Phase)
    assert get_args(v.VersionStateName) == v.VERSION_STATES
    assert tuple(s.value for s in v.VersionState) == v.VERSION_STATES
    assert set(get_args(v.StoredRoute)) == {r.value for r in v.Route} - {"rejected"}
    assert [p.number for p in v.Phase] == [1, 2, 3]
    assert [v.stored_route(r) for r in v.Route if r is not v.Route.rejected] == list(v.ROUTES)
    with pytest.raises(ValueError, match="rejected request is never stored"):
        v.stored_route(v.Route.rejected)
    assert [p.label for p in v.Phase] == ["1 cold start", "2 reinforcement", "3 steady state"]


def test_every_layer_uses_the_one_definition() -> None:
    assert lifecycle.Phase is v.Phase and lifecycle.Route is v.Route
    assert status.PHASES is v.PHASES
    assert status_models.ModelVersionState is v.VersionState
    assert get_type_hints(records.ModelVersionRecord)["state"] is v.VersionStateName
    assert get_type_hints(records.RequestRecord)["route"] is v.StoredRoute
    # the store also keeps answers served from the cache; the engine decides only these two
    assert get_type_hints(records.RequestRecord)["served_by"] == v.StoredServedBy | None
    assert get_type_hints(lifecycle.Decision)["serve"] == v.ServedBy | None
    assert set(get_args(v.StoredServedBy)) == set(get_args(v.ServedBy)) | {"cache"}


def test_a_route_says_who_it_calls() -> None:
    calls = {r: (r.calls_teacher, r.calls_student) for r in v.Route}
    assert calls == {
        v.Route.remote_only: (True, False),
        v.Route.local_only: (False, True),
        v.Route.both: (True, True),
        v.Route.rejected: (False, False),
    }


def test_openapi_error_types_come_from_the_error_tree() -> None:
    doc = http_api.document()  # the seed config's OpenAPI document
    schema = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert schema["type"]["enum"] == errors.error_types()
    assert {"internal_error", "store_unavailable", "request_timeout", "method_not_allowed"} <= set(
        errors.error_types()
    )
    assert "startup_failed" not in errors.error_types()  # never an HTTP answer
