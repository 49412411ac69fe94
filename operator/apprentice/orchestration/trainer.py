"""The trainer subprocess: started, logged, killed with the gateway.

Training runs in its own process (``python -m apprentice.training.run --spec``)
so the request path never waits on it and a crash in torch cannot take the
gateway down. On Linux the child also dies when the gateway dies, even by
SIGKILL, so a restarted gateway never races an orphaned run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _death_signal() -> Callable[[], None] | None:
    """Linux: a pre-exec hook making the trainer get SIGKILL when the gateway dies (even
    by SIGKILL), so a restarted gateway never races an orphaned run writing into the same
    directory. libc is resolved here, in the parent: the hook itself only makes one
    system call, which is safe between fork and exec even with threads running."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    kill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(1, kill)  # PR_SET_PDEATHSIG

    return hook


class TrainerProcesses:
    """Runs trainer commands with their output in a log file; can kill them all."""

    def __init__(self) -> None:
        self._procs: set[asyncio.subprocess.Process] = set()

    async def run(self, argv: Sequence[str], log_path: Path) -> int:
        """Run ``argv`` to completion (stdout and stderr to ``log_path``); the exit code.

        Cancelling the caller kills the process.
        """
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_death_signal(),
            )
            self._procs.add(proc)
            try:
                return await proc.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
            finally:
                self._procs.discard(proc)

    def kill_all(self) -> None:
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
