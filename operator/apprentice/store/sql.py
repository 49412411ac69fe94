"""The Store in SQL, shared by both backends (see :mod:`apprentice.store.sqlcore`)."""

from __future__ import annotations

from apprentice.store.batches import BatchRows
from apprentice.store.feedback_rows import FeedbackRows
from apprentice.store.keyrows import KeyRows
from apprentice.store.retention import RetentionRows
from apprentice.store.series import SeriesRows
from apprentice.store.sqlcore import Cursor, SqlCore, Tx
from apprentice.store.versions import VersionRows

__all__ = ["Cursor", "SqlCore", "SqlStore", "Tx"]


class SqlStore(BatchRows, SeriesRows, VersionRows, KeyRows, FeedbackRows, RetentionRows):
    """Every Store method in SQL; a backend adds connections and its dialect."""
