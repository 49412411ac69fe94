"""Teachers: the remote providers, their shared HTTP policy, prices and the replay teacher.

Import modules, not names, at call sites: ``from apprentice.teachers import base, errors``.
"""

from apprentice.teachers.base import (
    Completion,
    Teacher,
    TeacherAnswer,
    TeacherPool,
    Usage,
    build_pool,
    build_teacher,
)

__all__ = [
    "Completion",
    "Teacher",
    "TeacherAnswer",
    "TeacherPool",
    "Usage",
    "build_pool",
    "build_teacher",
]
