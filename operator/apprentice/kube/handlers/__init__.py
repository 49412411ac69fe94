"""Thin kopf handlers, one module per resource; each exposes ``register(registry, settings)``.

Handlers parse, call the pure builders and :mod:`apprentice.kube.reconcile`, and execute;
every foreign error is translated here into kopf's retry semantics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, cast

import kopf
from pydantic import ValidationError

from apprentice.config import errors as config_errors
from apprentice.kube import client as k8s
from apprentice.kube.gateway_client import GatewayError, GatewayUnavailable
from apprentice.kube.objects import InvalidTaskName

__all__ = ["KubeObject", "as_body", "emit", "namespace_of", "now", "spec_problem", "translated"]

#: An object as kopf hands it to a handler, or as our own client read it.
KubeObject = kopf.Body | Mapping[str, Any]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def translated(delay: float) -> Iterator[None]:
    """API and gateway errors as kopf outcomes: transient ones (unavailable, 409 conflicts)
    retry after ``delay`` (callers pass ``settings.retry_delay(retry)``: exponential)."""
    try:
        yield
    except (k8s.KubeUnavailable, k8s.Conflict, GatewayUnavailable) as exc:
        raise kopf.TemporaryError(str(exc), delay=delay) from exc
    except (k8s.KubeError, GatewayError) as exc:
        raise kopf.PermanentError(str(exc)) from exc


def spec_problem(exc: ValidationError | InvalidTaskName) -> str:
    """A one-line summary of an invalid spec (or name): the paths and what is wrong."""
    if isinstance(exc, InvalidTaskName):
        return str(exc)
    issues = config_errors.issues_from(exc)[:5]
    return "; ".join(f"spec.{i.path}: {i.message}" for i in issues)


def as_body(obj: KubeObject) -> kopf.Body:
    """kopf's read-only view of an object our own client read (kopf.event takes one)."""
    return obj if isinstance(obj, kopf.Body) else kopf.Body(cast(kopf.RawBody, obj))


def namespace_of(namespace: str | None) -> str:
    """The namespace of a namespaced object (kopf types it optional for cluster scope)."""
    if namespace is None:
        raise kopf.PermanentError("a namespaced resource arrived without a namespace")
    return namespace


def emit(body: KubeObject, type_: str, reason: str, message: str) -> None:
    """A Kubernetes Event on ``body`` (messages never carry secrets: see the tests).

    A Warning ends with the link to its reason's entry in the errors reference (cause and
    fix); the message is cut first so the link always fits in Kubernetes' 1 KiB.
    """
    if type_ == "Warning":
        link = f" (see {config_errors.docs_url('operator', reason)})"
        message = message[: 1000 - len(link)] + link
    kopf.event(as_body(body), type=type_, reason=reason, message=message[:1000])
