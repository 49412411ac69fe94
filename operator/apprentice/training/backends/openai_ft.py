"""OpenAI's fine-tuning API: upload the chat JSONL, create a job, poll it to the end.

The result is not a local adapter but a remote model name
(``ft:gpt-4o-mini-...:org::id``), written as the version's ``adapter_dir`` and
served afterwards by the ``openai`` student (``local.backend: openai``,
:mod:`apprentice.students.openai_ft`). The API key comes from the environment
(``local.api_key_env``, ``OPENAI_API_KEY`` by default) and never appears in
errors or metadata.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from apprentice.config import TrainingConfig
from apprentice.teachers import errors as teacher_errors
from apprentice.training.backends.base import (
    BackendUnavailable,
    Progress,
    TrainingFailed,
    TrainingResult,
    finish_run,
)
from apprentice.training.dataset import TrainingDataset

__all__ = ["OpenAIFineTuner"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_DONE = {"succeeded", "failed", "cancelled"}
_STEP_LOSS = re.compile(r"Step \d+/\d+: training loss=([0-9.]+)")


class OpenAIFineTuner:
    """Fine-tuning through ``/v1/files`` and ``/v1/fine_tuning/jobs``."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        poll_interval_s: float = 15.0,
        max_wait_s: float = 24 * 3600.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.api_key_env = api_key_env
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.transport = transport
        self.sleep = sleep

    def _client(self) -> httpx.Client:
        key = os.environ.get(self.api_key_env)
        if not key:
            raise BackendUnavailable(
                f"the openai fine-tuning backend needs an API key in ${self.api_key_env}"
            )
        teacher_errors.register_secret(key)  # OpenAI echoes keys in 401 bodies
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(120.0, connect=10.0),
            transport=self.transport,
        )

    @staticmethod
    def _check(response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                err = response.json().get("error", {})
                message = err.get("message") if isinstance(err, dict) else str(err)
            except ValueError:
                message = response.text[:200]
            hint = " (check the API key)" if response.status_code == 401 else ""
            message = teacher_errors.scrub(str(message))
            raise TrainingFailed(f"OpenAI {what} failed ({response.status_code}): {message}{hint}")
        body = response.json()
        if not isinstance(body, dict):
            raise TrainingFailed(f"OpenAI {what} answered {type(body).__name__}, not an object")
        return body

    def train(
        self,
        dataset: TrainingDataset,
        *,
        base_model: str,
        hyper: TrainingConfig,
        out_dir: Path,
        progress: Progress | None = None,
    ) -> TrainingResult:
        if len(dataset) == 0:
            raise TrainingFailed("the dataset is empty; collect teacher examples first")
        started = time.perf_counter()
        try:
            with self._client() as client:
                upload, job = self._submit(client, dataset, base_model, hyper)
                job = self._poll(client, job, progress)
                losses = self._losses(client, job["id"])
        except httpx.HTTPError as exc:
            raise TrainingFailed(
                f"OpenAI fine-tuning API at {self.base_url} unreachable: {type(exc).__name__}"
            ) from exc
        model = job.get("fine_tuned_model")
        if not model:
            raise TrainingFailed(f"OpenAI job {job['id']} succeeded without a fine_tuned_model")
        return finish_run(
            dataset,
            adapter_dir=str(model),
            base_model=base_model,
            hyper_parameters={**hyper.model_dump(mode="json"), "backend": "openai"},
            loss_curve=losses,
            started=started,
            metrics={
                "fine_tuned_model": model,
                "job_id": job["id"],
                "training_file": upload["id"],
                "trained_tokens": job.get("trained_tokens"),
                "serve_as": "openai",
                "base_url": self.base_url,
            },
            out_dir=out_dir,
        )

    def _submit(
        self, client: httpx.Client, dataset: TrainingDataset, base_model: str, hyper: TrainingConfig
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Upload the dataset and create the fine-tuning job: (the file, the job)."""
        upload = self._check(
            client.post(
                "/files",
                data={"purpose": "fine-tune"},
                files={"file": ("train.jsonl", dataset.to_jsonl_text().encode("utf-8"))},
            ),
            "file upload",
        )
        supervised = {"hyperparameters": {"n_epochs": hyper.epochs, "batch_size": hyper.batch_size}}
        job = self._check(
            client.post(
                "/fine_tuning/jobs",
                json={
                    "model": base_model,
                    "training_file": upload["id"],
                    "seed": hyper.seed,
                    "suffix": "apprentice",
                    "method": {"type": "supervised", "supervised": supervised},
                },
            ),
            "job creation",
        )
        return upload, job

    def _poll(
        self, client: httpx.Client, job: dict[str, Any], progress: Progress | None
    ) -> dict[str, Any]:
        waited = 0.0
        while job.get("status") not in _DONE:
            if waited > self.max_wait_s:
                raise TrainingFailed(
                    f"OpenAI job {job['id']} still {job.get('status')} after {waited:.0f}s"
                )
            self.sleep(self.poll_interval_s)
            waited += self.poll_interval_s
            job = self._check(client.get(f"/fine_tuning/jobs/{job['id']}"), "job status")
            if progress is not None:
                progress({"event": "status", "job": job["id"], "status": job.get("status")})
        if job["status"] != "succeeded":
            error = job.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise TrainingFailed(
                f"OpenAI job {job['id']} {job['status']}: {message or 'no reason'}"
            )
        return job

    def _losses(self, client: httpx.Client, job_id: str) -> list[float]:
        body = self._check(
            client.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}), "events"
        )
        losses = []
        for event in reversed(body.get("data", [])):  # the API lists newest first
            match = _STEP_LOSS.search(str(event.get("message", "")))
            if match:
                losses.append(float(match.group(1)))
        return losses
