"""One request as one typed record that the pipeline's steps fill in, once each.

::

    admit   -> task, input, id, times, route, holds (the budget reservations)
    call    -> teacher / student answers (or why not), what each call cost
    judge   -> evaluation, the judge's spend line
    commit  -> spend lines (the settle), served output, the store transaction

A step reads what the steps before it wrote and writes only its own fields, so
each is a function of the record. ``tags`` and ``caller`` travel with the
request for callers' metadata and API-key accounting; ``usage`` is the served
answer's tokens (the teacher's as billed, the student's as its tokenizer counted).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from apprentice.engine.budget import BudgetExhausted
from apprentice.evaluators.base import Evaluation
from apprentice.gateway.canary import CanaryCall
from apprentice.gateway.spending import Hold
from apprentice.gateway.tasks import ServedTask
from apprentice.json_types import JsonObject
from apprentice.store import records
from apprentice.students.base import StudentAnswer
from apprentice.teachers.base import TeacherAnswer, TextSink, Usage
from apprentice.vocabulary import Route, ServedBy, StoredRoute, stored_route

__all__ = ["Meta", "Request", "Result", "keyed", "request_meta"]


@dataclass(frozen=True, slots=True)
class Meta:
    """What a caller attaches to a request besides its input (HTTP headers, API key)."""

    tags: Mapping[str, str] = field(default_factory=dict)
    caller: str | None = None  # the API key's public id, when keys are in use
    # stream=true: given the request id, the sink of the teacher's text as it streams in
    stream: Callable[[str], TextSink] | None = None


NO_META = Meta()


@functools.lru_cache(maxsize=4096)
def keyed(caller: str) -> Meta:
    """An untagged request's meta with API key ``caller``: shared per key like ``NO_META``
    (read-only) instead of built per request, the usual case when keys are required."""
    return Meta(caller=caller)


def request_meta(caller: str | None, tags: Mapping[str, str] | None) -> Meta:
    """A request's meta; without tags a shared one (``NO_META``, or :func:`keyed`'s).
    ``tags`` are taken as they are: checked, and the request's own (never copied)."""
    if tags is None:
        return NO_META if caller is None else keyed(caller)
    return Meta(tags=tags, caller=caller)


@dataclass(frozen=True, slots=True)
class Result:
    """What a caller gets: the validated output and the request id (never who answered)."""

    output: JsonObject
    request_id: str
    usage: Usage | None = None  # the served answer's tokens (teacher's billed, student's counted)


@dataclass(slots=True, eq=False)
class Request:
    """See the module docstring; fields are grouped by the step that writes them."""

    task: ServedTask
    input: JsonObject
    id: str
    received_at: datetime
    started: float  # time.perf_counter() at admission, for the latency
    route: Route
    meta: Meta = NO_META
    # admit
    teacher_hold: Hold | None = None
    student_hold: Hold | None = None
    refused: BudgetExhausted | None = None  # the cap a refused reservation would cross
    canary: CanaryCall | None = None  # routed to a canary's candidate (gateway/canary.py)
    # call
    teacher: TeacherAnswer | None = None  # a schema-valid teacher answer
    teacher_failure: BaseException | None = None  # or why there is none
    student: StudentAnswer | None = None  # the student's answer (output None: invalid)
    student_failure: BaseException | None = None
    teacher_cost: float = 0.0
    student_cost: float = 0.0
    # judge
    evaluation: Evaluation | None = None
    spend: list[records.SpendRecord] = field(default_factory=list)

    @property
    def calls_teacher(self) -> bool:
        return self.route.calls_teacher

    @property
    def calls_student(self) -> bool:
        return self.route.calls_student

    @property
    def stored_route(self) -> StoredRoute:
        """The route as the store's column holds it (a rejected request is never stored)."""
        return stored_route(self.route)

    @property
    def student_output(self) -> JsonObject | None:
        return None if self.student is None else self.student.output

    @property
    def served_by(self) -> ServedBy | None:
        """The teacher's answer when it was called and answered, else the student's."""
        if self.teacher is not None:
            return "teacher"
        if self.student is not None and self.student.output is not None:
            return "student"
        return None

    @property
    def output(self) -> JsonObject | None:
        if self.teacher is not None:
            return self.teacher.output
        return None if self.student is None else self.student.output

    @property
    def usage(self) -> Usage | None:
        """The served answer's tokens: the teacher's as billed, the student's as its
        tokenizer (or its server) counted them."""
        if self.teacher is not None:
            return self.teacher.usage
        student = self.student
        return student.usage if student is not None and student.output is not None else None

    def holds(self) -> list[Hold]:
        return [h for h in (self.teacher_hold, self.student_hold) if h is not None]
