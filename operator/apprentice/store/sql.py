"""The Store in SQL, shared by both backends (see :mod:`apprentice.store.sqlcore`)."""

from __future__ import annotations

from apprentice.store.budget import BudgetRows
from apprentice.store.ledger import Ledger
from apprentice.store.lifecycle import Lifecycle
from apprentice.store.sqlcore import Cursor, SqlCore, Tx

__all__ = ["Cursor", "SqlCore", "SqlStore", "Tx"]


class SqlStore(Ledger, Lifecycle, BudgetRows):
    """Every Store method in SQL; a backend adds connections and its dialect."""
