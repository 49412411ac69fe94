"""The request path: one :class:`~apprentice.gateway.request.Request` through four steps, once.

::

    admit   input schema (422), route, reserve teacher / paid student (429, 503)
      -> call    teacher and/or student, concurrently, under timeouts; fallback
      -> judge   both answered: reserve the judge, score, engine learns at commit
      -> commit  settle + example + comparison + engine state: ONE transaction

Each step is its own object or function with one job (admit.py, calls.py,
judging.py, commit.py); this module only composes them and guarantees that a
request cut off in between (cancelled, a bug) never leaves a reservation open:
a hold not settled by the commit is booked at its worst case if its call
started, else released.
"""

from __future__ import annotations

import functools

from apprentice.gateway import judging, tracing
from apprentice.gateway.admit import Admission
from apprentice.gateway.cache import AnswerCache
from apprentice.gateway.calls import Caller
from apprentice.gateway.commit import Committer
from apprentice.gateway.parts import Parts
from apprentice.gateway.request import NO_META, Meta, Result
from apprentice.gateway.tasks import ServedTask


class Pipeline:
    """``run(task, input)``: admit -> call -> judge -> commit (see the module docstring)."""

    def __init__(self, parts: Parts, admission: Admission, committer: Committer) -> None:
        self.parts = parts
        self.admission = admission
        self.caller = Caller(parts, admission)
        self.committer = committer
        self.cache = AnswerCache(parts)  # step 0: repeats of a task with ``cache.enabled``

    def task(self, name: str) -> ServedTask:
        """The served task called ``name``, or 404 ``unknown_task``."""
        return self.admission.task(name)

    async def run(self, task: str, task_input: object, meta: Meta = NO_META) -> Result:
        with tracing.request(task):  # the root span; a shared no-op when tracing is off
            served = self.admission.task(task)
            if served.cfg.cache.enabled:
                compute = functools.partial(self._run, served, task_input, meta)  # no frame
                return await self.cache.run(served, task_input, meta, compute)
            return await self._run(served, task_input, meta)

    async def _run(self, served: ServedTask, task_input: object, meta: Meta) -> Result:
        req = await self.admission.admit(served, task_input, meta)
        tracing.admitted(req)
        try:
            await self.caller.call(req)
            if req.teacher is not None and req.student is not None:  # else nothing to judge
                await tracing.judge(req, judging.judge(self.parts.budget, req))
            return await tracing.commit(req, self.committer.commit(req))
        finally:
            if req.teacher_hold is not None or req.student_hold is not None:
                self.parts.settler.release_all(req.holds())  # settled ones are skipped
