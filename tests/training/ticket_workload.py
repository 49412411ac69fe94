"""A small synthetic ticket workload: category follows keywords, priority follows urgency.

Stands in for the demo's generator so training and serving can be measured
here; the rules are deterministic, so a student that learns them agrees.
"""

from __future__ import annotations

import random
from typing import Any

from apprentice import config

TASK = config.TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "description": "Classify support tickets by category and priority",
        "input_schema": {"text": "str", "metadata": "dict"},
        "output_schema": {"category": "str", "priority": "int", "confidence": "float"},
        "evaluator": "structured_match",
        "match_fields": ["category", "priority"],
        "evaluator_options": {"weights": {"category": 2, "priority": 1}},
    }
)

KEYWORDS = {
    "billing": ["invoice", "refund", "charged twice", "payment", "subscription fee", "receipt"],
    "technical": ["error 500", "app crashes", "bug", "page will not load", "timeout", "sync fails"],
    "account": ["password reset", "locked out", "change my email", "two-factor code", "username"],
    "shipping": ["package", "delivery", "tracking number", "courier", "parcel arrived damaged"],
    "feedback": ["feature request", "suggestion", "love the new design", "idea for the roadmap"],
}
URGENT = ["URGENT", "asap", "immediately", "production is down", "critical"]
RELAXED = ["no rush", "whenever you can", "low priority"]
OPENERS = ["Hi team,", "Hello,", "Good morning,", "Hey support,", "Dear support team,", ""]
FILLERS = [
    "I have been a customer for years.",
    "This happened again this morning.",
    "Please advise.",
    "Thanks for looking into it.",
    "My colleague saw the same thing.",
    "",
]
NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana"]
TIERS = ["free", "pro", "enterprise"]
CHANNELS = ["email", "chat", "phone", "web"]


def ticket(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """One (input, teacher output) pair."""
    category = rng.choice(sorted(KEYWORDS))
    keyword = rng.choice(KEYWORDS[category])
    tier = rng.choice(TIERS)
    mood = rng.random()
    urgency = rng.choice(URGENT) if mood < 0.3 else rng.choice(RELAXED) if mood > 0.8 else ""
    priority = 1 if mood < 0.3 else 4 if mood > 0.8 else 2 if tier == "enterprise" else 3
    parts = [
        rng.choice(OPENERS),
        f"there is a problem with the {keyword} on order {rng.randint(1000, 99999)}.",
        urgency,
        rng.choice(FILLERS),
        f"{rng.choice(NAMES)}",
    ]
    text = " ".join(p for p in parts if p)
    task_input = {"text": text, "metadata": {"tier": tier, "channel": rng.choice(CHANNELS)}}
    output = {
        "category": category,
        "priority": priority,
        "confidence": round(0.8 + rng.random() * 0.19, 2),
    }
    return task_input, output


def workload(n: int, seed: int = 7) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    rng = random.Random(seed)
    return [ticket(rng) for _ in range(n)]


def agreement(student: dict[str, Any] | None, teacher: dict[str, Any]) -> float:
    """structured_match on [category, priority] with weights 2:1."""
    if student is None:
        return 0.0
    cat = str(student.get("category", "")).lower() == teacher["category"]
    pri = student.get("priority") == teacher["priority"]
    return (2 * cat + pri) / 3
