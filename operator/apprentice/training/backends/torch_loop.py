"""The optimisation loop of the transformers + peft fine-tuner (:mod:`.huggingface`).

AdamW with a warm-up then cosine learning-rate schedule, gradient clipping, and
batches run a few rows at a time with their gradients summed (see :class:`Loop`).
Kept apart from the fine-tuner, which decides what is trained (the data, the
hyper-parameters, the adapter); this module only runs the steps. ``torch`` is a
heavy optional dependency, imported where it is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from apprentice.config import TrainingConfig
from apprentice.training.backends.base import TrainingFailed

__all__ = ["Encoded", "Loop", "schedule", "tensors"]

Encoded = list[tuple[list[int], int]]
"""Per example: its token ids and how many of them are the prompt (no loss on those)."""


def schedule(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over 5% of the steps, then cosine down to 5%."""
    warmup = max(1, total_steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        remaining = (total_steps - step) / max(1, total_steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (1 - remaining)))

    return factor


def tensors(encoded: Encoded, batch: list[int], pad: int) -> tuple[Any, Any]:
    """Input ids and labels of one batch: right padding, loss on the answer tokens only.

    No attention mask: causal attention never lets a real token see the pads after it,
    pads carry no loss, and the plain causal kernel is both faster and free of fully
    masked (NaN) rows.
    """
    import torch  # heavy optional dependency

    width = max(len(encoded[i][0]) for i in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, i in enumerate(batch):
        seq, n_prompt = encoded[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
    return ids, labels


class Loop:
    """One run's optimisation: AdamW, the learning-rate schedule, gradient clipping.

    A batch is run ``micro_batch`` rows at a time, the gradients summed, each part's
    loss weighted by its share of the batch's answer tokens: the step is the whole
    batch's (its token mean), while only a part's activations are alive at once.
    """

    def __init__(
        self,
        model: Any,
        used: TrainingConfig,
        *,
        decay: float,
        total_steps: int,
        device: str,
        micro_batch: int | None = None,
    ) -> None:
        import torch  # heavy optional dependency

        self.model = model
        self.device = device
        self.total_steps = total_steps
        self.micro_batch = micro_batch or used.batch_size
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(self.params, lr=used.learning_rate, weight_decay=decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimiser, schedule(total_steps))
        self.step = 0

    def _backward(self, ids: Any, labels: Any, share: float) -> float:
        """Forward and backward of one part; its (unweighted) loss."""
        import torch  # heavy optional dependency

        loss = self.model(input_ids=ids.to(self.device), labels=labels.to(self.device)).loss
        if not torch.isfinite(loss):
            raise TrainingFailed(
                f"loss became {float(loss)} at step {self.step}; lower the learning rate"
            )
        (loss if share == 1.0 else loss * share).backward()
        return float(loss.detach())

    def train_step(self, encoded: Encoded, batch: list[int], pad: int) -> float:
        """One optimiser step on one batch; its loss."""
        import torch  # heavy optional dependency

        parts = [
            tensors(encoded, batch[i : i + self.micro_batch], pad)
            for i in range(0, len(batch), self.micro_batch)
        ]
        # The model's loss is the mean over answer tokens, labels shifted by one.
        counts = [int((labels[:, 1:] != -100).sum()) for _, labels in parts]
        self.optimiser.zero_grad(set_to_none=True)
        loss = 0.0
        for (ids, labels), count in zip(parts, counts, strict=True):
            share = 1.0 if len(parts) == 1 else count / sum(counts)
            loss += share * self._backward(ids, labels, share)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimiser.step()
        self.scheduler.step()
        self.step += 1
        return loss

    def epoch(self, encoded: Encoded, batches: list[list[int]], pad: int) -> float:
        """One pass over ``batches`` (until the step budget ends); the mean loss."""
        losses: list[float] = []
        for batch in batches:
            if self.step >= self.total_steps:
                break
            losses.append(self.train_step(encoded, batch, pad))
        return sum(losses) / len(losses)
