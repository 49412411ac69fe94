"""The request path (ARCHITECTURE.md "One request"); body lands with the engine/store APIs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprentice.config import ApprenticeConfig


@dataclass(frozen=True)
class Result:
    """What a caller gets: the validated output and the request id (never who answered)."""

    output: dict[str, Any]
    request_id: str


class Gateway:
    def __init__(self, cfg: ApprenticeConfig, *, base_dir: Path | None = None) -> None:
        self.config = cfg
        self.store: Any = None

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, task: str, task_input: dict[str, Any]) -> Result:
        raise NotImplementedError

    def engine_state(self, task: str) -> Any: ...

    async def status(self, task: str) -> dict[str, Any]:
        raise NotImplementedError

    def training_in_progress(self, task: str) -> bool:
        return False

    async def wait_for_training_idle(self, task: str | None = None) -> None: ...
