"""``python -m apprentice.training.job``: the Kubernetes trainer Job.

Pulls the run's training data from the gateway's admin API
(``GET /admin/tasks/{task}/training/dataset``: chat JSONL, selected by the
gateway exactly as for the embedded LocalOrchestrator, see
:mod:`apprentice.gateway.training_data`), trains with the configured backend,
and writes the adapter, ``metadata.json`` and ``metrics.json`` to the output
directory on the model volume. The operator then registers the version with the
gateway.

A retrain warm-starts as in the embedded mode: with the data, the gateway names the
adapter the run starts from (the active version's, on the same task volume the Job
mounts, header ``X-Apprentice-Init-Adapter``), decided by the same rule and the same
``training.warm_start`` switch; the huggingface backend checks its base and LoRA shape
and records it as ``init_adapter``. Every setting is a flag or an environment variable
(the Job's manifest sets the latter):

====================  ===============================  ===========================
flag                  environment                      meaning
====================  ===============================  ===========================
--gateway-url         APPRENTICE_GATEWAY_URL           gateway base URL
--task                APPRENTICE_TASK                  task name
--token-file          APPRENTICE_ADMIN_TOKEN_FILE      admin token file (Secret mount)
(none)                APPRENTICE_ADMIN_TOKEN           admin token, when no file
--output-dir          APPRENTICE_OUTPUT_DIR            e.g. /models/<task>/v4
--base-model          APPRENTICE_BASE_MODEL            default apprentice/tiny
--backend             APPRENTICE_FINE_TUNE_BACKEND     huggingface|unsloth|axolotl|openai
--training            APPRENTICE_TRAINING              TrainingConfig as JSON
--device              APPRENTICE_DEVICE                auto|cpu|cuda
--max-steps           APPRENTICE_MAX_STEPS             huggingface: cap on optimiser
                                                       steps (smoke runs, tests)
====================  ===============================  ===========================

Exit codes: 0 trained; 1 training or gateway failure; 2 bad settings. The
reason is printed to stderr and written to ``/dev/termination-log`` (what
Kubernetes shows in the pod status) when that file is writable. The admin
token never appears in any message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from apprentice.config import FineTuneBackend, TrainingConfig
from apprentice.training.backends import TrainingError, TunerOptions, get_fine_tuner
from apprentice.training.dataset import INIT_ADAPTER_HEADER, DatasetError, TrainingDataset

__all__ = [
    "JobError",
    "JobSettings",
    "TrainingInput",
    "fetch_dataset",
    "fetch_input",
    "main",
    "settings_from",
]

METRICS_FILE = "metrics.json"
TERMINATION_LOG = Path("/dev/termination-log")


class JobError(Exception):
    """A failure with a message for the operator (exit code in ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class JobSettings:
    """Resolved settings of one trainer Job (``repr`` hides the token)."""

    def __init__(
        self,
        *,
        gateway_url: str,
        task: str,
        token: str,
        output_dir: Path,
        base_model: str,
        backend: FineTuneBackend,
        hyper: TrainingConfig,
        device: str,
        max_steps: int | None = None,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.task = task
        self.token = token
        self.output_dir = output_dir
        self.base_model = base_model
        self.backend = backend
        self.hyper = hyper
        self.device = device
        self.max_steps = max_steps

    def __repr__(self) -> str:
        return f"JobSettings(task={self.task!r}, gateway={self.gateway_url!r}, token=***)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apprentice.training.job",
        description="Train one adapter on the gateway's training data (Kubernetes Job).",
    )
    parser.add_argument("--gateway-url")
    parser.add_argument("--task")
    parser.add_argument("--token-file")
    parser.add_argument("--output-dir")
    parser.add_argument("--base-model")
    parser.add_argument("--backend")
    parser.add_argument("--training", help="TrainingConfig as JSON.")
    parser.add_argument("--device")
    parser.add_argument("--max-steps", help="huggingface: cap on optimiser steps.")
    return parser


def settings_from(argv: list[str] | None, env: Mapping[str, str]) -> JobSettings:
    """Flags win over environment variables; missing required ones raise JobError(code=2)."""
    args = _parser().parse_args(argv)

    def pick(flag: str | None, name: str, default: str | None = None) -> str | None:
        return flag or env.get(name) or default

    missing = []
    gateway = pick(args.gateway_url, "APPRENTICE_GATEWAY_URL")
    task = pick(args.task, "APPRENTICE_TASK")
    out = pick(args.output_dir, "APPRENTICE_OUTPUT_DIR")
    for value, what in ((gateway, "--gateway-url"), (task, "--task"), (out, "--output-dir")):
        if not value:
            missing.append(what)
    if missing:
        raise JobError(f"missing settings: {', '.join(missing)} (or their APPRENTICE_* env)", 2)
    token_file = pick(args.token_file, "APPRENTICE_ADMIN_TOKEN_FILE")
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise JobError(f"cannot read admin token file {token_file}: {exc.strerror}", 2) from exc
    else:
        token = env.get("APPRENTICE_ADMIN_TOKEN", "").strip()
    if not token:
        raise JobError(
            "no admin token: mount the gateway's admin token Secret and pass --token-file "
            "(or APPRENTICE_ADMIN_TOKEN_FILE / APPRENTICE_ADMIN_TOKEN)",
            2,
        )
    try:
        backend = FineTuneBackend(
            pick(args.backend, "APPRENTICE_FINE_TUNE_BACKEND") or "huggingface"
        )
    except ValueError as exc:
        raise JobError(f"{exc}; use one of {[b.value for b in FineTuneBackend]}", 2) from exc
    try:
        hyper = TrainingConfig.model_validate_json(
            pick(args.training, "APPRENTICE_TRAINING", "{}") or "{}"
        )
    except ValidationError as exc:
        raise JobError(f"invalid training settings: {exc}", 2) from exc
    steps = pick(args.max_steps, "APPRENTICE_MAX_STEPS")
    if steps is not None and (not steps.isdigit() or int(steps) == 0):
        raise JobError(
            f"--max-steps (APPRENTICE_MAX_STEPS) must be a positive integer: {steps!r}", 2
        )
    assert gateway and task and out
    return JobSettings(
        gateway_url=gateway,
        task=task,
        token=token,
        output_dir=Path(out),
        base_model=pick(args.base_model, "APPRENTICE_BASE_MODEL", "apprentice/tiny") or "",
        backend=backend,
        hyper=hyper,
        device=pick(args.device, "APPRENTICE_DEVICE", "auto") or "auto",
        max_steps=int(steps) if steps is not None else None,
    )


@dataclass(frozen=True)
class TrainingInput:
    """What the gateway hands the run: its data and the adapter it starts from (or None)."""

    dataset: TrainingDataset
    init_adapter: str | None


def fetch_dataset(
    settings: JobSettings, *, transport: httpx.BaseTransport | None = None
) -> TrainingDataset:
    """The run's training data, as the gateway selected it (chat JSONL)."""
    return fetch_input(settings, transport=transport).dataset


def fetch_input(
    settings: JobSettings, *, transport: httpx.BaseTransport | None = None
) -> TrainingInput:
    """The run's data and warm start, as the gateway selected them.

    The adapter is dropped when this run's own ``training.warm_start`` is off (the
    gateway reads the same switch; this keeps a hand-made Job honest too).
    """
    url = f"{settings.gateway_url}/admin/tasks/{settings.task}/training/dataset"
    try:
        with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0), transport=transport) as c:
            response = c.get(url, headers={"Authorization": f"Bearer {settings.token}"})
    except httpx.HTTPError as exc:
        raise JobError(f"gateway {settings.gateway_url} unreachable: {type(exc).__name__}") from exc
    if response.status_code == 401:
        raise JobError("the gateway rejected the admin token (401); check the Secret it comes from")
    if response.status_code == 404:
        raise JobError(f"the gateway does not know task {settings.task!r} (404)")
    if response.status_code != 200:
        raise JobError(f"training data answered {response.status_code}: {response.text[:200]}")
    try:
        dataset = TrainingDataset.from_jsonl_text(response.text, url)
    except DatasetError as exc:
        raise JobError(f"the training data is not chat JSONL: {exc}") from exc
    if len(dataset) == 0:
        raise JobError(
            f"the train split of {settings.task!r} is empty after the gateway's selection; "
            "nothing to train on"
        )
    named = response.headers.get(INIT_ADAPTER_HEADER)
    init = urllib.parse.unquote(named) if named and settings.hyper.warm_start else None
    return TrainingInput(dataset, init)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def run(settings: JobSettings, *, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """Fetch, train, write; returns the metrics written to ``metrics.json``."""
    given = fetch_input(settings, transport=transport)
    _emit(
        {
            "event": "dataset",
            "task": settings.task,
            "examples": len(given.dataset),
            "init_adapter": given.init_adapter,
        }
    )
    options = TunerOptions(
        device=settings.device, max_steps=settings.max_steps, init_adapter=given.init_adapter
    )
    tuner = get_fine_tuner(settings.backend, options)
    try:
        result = tuner.train(
            given.dataset,
            base_model=settings.base_model,
            hyper=settings.hyper,
            out_dir=settings.output_dir,
            progress=_emit,
        )
    except TrainingError as exc:
        raise JobError(f"training failed ({type(exc).__name__}): {exc}") from exc
    metrics = {"task": settings.task, **result.to_json()}
    path = settings.output_dir / METRICS_FILE
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True), encoding="utf-8")
    return metrics


def _terminate(message: str) -> None:
    sys.stderr.write(f"apprentice trainer job failed: {message}\n")
    try:
        with TERMINATION_LOG.open("w", encoding="utf-8") as log:
            log.write(message[:4000])
    except OSError:
        pass  # not in a pod: stderr is enough


def main(
    argv: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> int:
    environ = os.environ if env is None else env
    if environ.get("APPRENTICE_ALLOW_DOWNLOAD", "") not in {"1", "true", "yes"}:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        settings = settings_from(argv, environ)
        metrics = run(settings, transport=transport)
    except JobError as exc:
        _terminate(str(exc))
        return exc.code
    except Exception as exc:  # the last line of defence: a clear reason, never a hang
        _terminate(f"unexpected {type(exc).__name__}: {exc}")
        return 1
    _emit({"event": "done", "adapter_dir": metrics["adapter_dir"], "metrics": METRICS_FILE})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
