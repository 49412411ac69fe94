"""The event loop ``apprentice serve`` runs on: uvloop when it is installed, else asyncio's.

uvloop is asyncio's event loop rebuilt on libuv, with the same API; it is the loop that
uvicorn's ``--loop auto`` picks when it can. The gateway's request path is event-loop
work (parsing, transports, callbacks, timers), and on uvloop the local-only HTTP path
answered 9-17% more requests a second for 10-16% less server CPU per request
(bench/gateway_bench.py with the Go client, runs alternated with asyncio's loop).

uvloop is optional: the ``speedups`` extra installs it, the gateway image has it, and
Windows has none. Without it asyncio's loop serves everything the same way, only
slower. ``gateway.event_loop`` (or ``apprentice serve --loop``) forces either one; a
forced uvloop that is not installed stops start-up with the command that installs it.
The benchmarks start their servers through :func:`run` too, so they measure what
``serve`` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from importlib import metadata
from typing import Any, TypeVar

from apprentice import config
from apprentice.gateway import errors

__all__ = ["chosen", "describe", "event_loop_factory", "run"]

T = TypeVar("T")


def event_loop_factory(
    choice: config.EventLoopChoice = "auto",
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop for ``choice``: uvloop's when allowed and installed.

    None stands for asyncio's own loop: ``asyncio.Runner``'s default, which is exactly
    what ``asyncio.run`` makes. ``auto`` falls back to it quietly; ``uvloop`` raises
    :class:`~apprentice.gateway.errors.StartupError` naming the extra to install.
    """
    if choice == "asyncio":
        return None
    try:
        # Optional dependency (the speedups extra): imported only when it may run.
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise errors.StartupError(
                "the uvloop event loop was asked for (gateway.event_loop or serve --loop) "
                f"but cannot be imported ({exc}): pip install 'apprentice[speedups]' (not on "
                "Windows), or ask for auto or asyncio"
            ) from exc
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: config.EventLoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` gives (see :func:`event_loop_factory`)."""
    try:
        factory = event_loop_factory(choice)
    except BaseException:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def describe(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop 0.23.0`` or ``asyncio``: which loop this is (``serve``'s start-up line)."""
    if type(loop).__module__.partition(".")[0] == "uvloop":
        return _uvloop()
    return "asyncio"


def chosen(choice: config.EventLoopChoice = "auto") -> str:
    """What :func:`run` runs on for ``choice`` here, as :func:`describe` names it, without
    starting a loop: for the benchmarks' report headers."""
    return "asyncio" if event_loop_factory(choice) is None else _uvloop()


def _uvloop() -> str:
    return f"uvloop {metadata.version('uvloop')}"
