"""Apprentice: distil an expensive remote LLM API into a cheap local model, one task at a time.

``from apprentice import Apprentice`` is the unified interface. It is imported
lazily so that ``apprentice validate-config`` or the pure engine never pay for the
gateway's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Apprentice", "SyncApprentice", "__version__"]

if TYPE_CHECKING:
    from apprentice.gateway.facade import Apprentice, SyncApprentice


def __getattr__(name: str) -> Any:
    if name in ("Apprentice", "SyncApprentice"):
        from apprentice.gateway import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'apprentice' has no attribute {name!r}")
