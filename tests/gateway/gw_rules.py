"""The test task ``classify`` and the rules its teacher and stand-in students follow.

The teacher's answer is always ``label = first word of text``. A stand-in
student's "adapter" is a directory whose ``adapter.json`` names the rule it
learned, so a training run, a held-out validation and a promotion are decided
by real data flowing through the orchestrator, quickly and deterministically.
"""

from __future__ import annotations

from typing import Any

RULES = {
    "first_word": lambda text: text.split()[0],
    "last_word": lambda text: text.split()[-1],
    "constant": lambda text: "unknown",
    # right 7 times in 8 (make_input cycles 8 first words): a decent but beatable version
    "first_but_golf": lambda text: "unknown" if text.startswith("golf") else text.split()[0],
    "invalid": None,  # answers text that is not JSON
}


def teacher_output(task_input: dict[str, Any]) -> dict[str, Any]:
    return {"label": RULES["first_word"](task_input["text"])}


def make_input(i: int) -> dict[str, Any]:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    return {"text": f"{words[i % len(words)]} ticket number {i} says {words[(i * 3) % 8]}"}
