"""A batch run in micro-batches has the same loss and gradients as the whole batch.

The tiny base trains 16 rows a step, 8 at a time, to halve the activations alive
at once (memory, issue 10); the step must not change: each part's loss is
weighted by its share of the batch's answer tokens.
"""

from __future__ import annotations

import random

import pytest
from test_entrypoints import write_dataset

from apprentice.config import TrainingConfig
from apprentice.students import tiny
from apprentice.training.backends import huggingface as hf
from apprentice.training.backends.torch_loop import Loop
from apprentice.training.dataset import TrainingDataset

torch = pytest.importorskip("torch")


def _one_step(micro: int, data: TrainingDataset) -> list[object]:
    torch.manual_seed(0)
    used = hf.effective_hyper(tiny.TINY_NAME, TrainingConfig(), len(data))
    model, codec = tiny.load_base(tiny.TINY_NAME, "cpu")
    encoded = hf._encode(codec, data, used.max_seq_length)
    peft_model = hf._with_lora(model, tiny.TINY_NAME, used, None)
    loop = Loop(peft_model, used, decay=0.1, total_steps=10, device="cpu", micro_batch=micro)
    batch = hf._batches(encoded, 16, random.Random(0))[0]
    assert len(batch) == 16
    loss = loop.train_step(encoded, batch, codec.pad_id)
    return [loss, *(p.grad.detach().clone() for p in loop.params)]  # this step's gradients


def test_micro_batches_make_the_whole_batch_step(tmp_path: object) -> None:
    from pathlib import Path

    data = TrainingDataset.read_jsonl(write_dataset(Path(str(tmp_path)) / "t.jsonl", 16))
    whole, parts = _one_step(16, data), _one_step(hf.TINY_MICRO_BATCH, data)
    assert hf.TINY_MICRO_BATCH < 16
    assert whole[0] == pytest.approx(parts[0], rel=1e-5)
    moved = 0
    for a, b in zip(whole[1:], parts[1:], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-8), "a gradient differs"
        moved += 1
    assert moved > 10
