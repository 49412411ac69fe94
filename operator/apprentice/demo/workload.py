"""The demo's workload: support tickets and what a frontier model would answer.

Each ticket is ``{"text": ..., "metadata": {"channel", "customer_tier", "region"}}``.
The "teacher" is deterministic ground truth (:func:`label`), standing in for a
frontier model that classifies perfectly, so the demo is offline and
reproducible; the replay teacher serves these answers priced like the real
model. The rules are what a support lead would write down:

- category: which part of the business the ticket is about (billing, technical,
  account, shipping, refund, product), carried by the issue sentence;
- priority 1 (drop everything) .. 4 (whenever): from urgency cues in the text,
  one step more urgent for enterprise customers;
- confidence: the teacher's self-reported certainty, higher when the ticket
  states its urgency explicitly.

Texts stay short (about 60-160 characters) and keep their category-bearing
keywords, so a tiny byte-level student can learn them in about a minute on a
CPU, yet vary enough (names, products, order numbers, openings and closings,
four channels) that memorising inputs does not work: held-out inputs are new.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "REGIONS",
    "SHIFT_CATEGORY",
    "TIERS",
    "URGENCY_LEVELS",
    "Ticket",
    "generate",
    "label",
    "write_workload",
]

CATEGORIES = ("billing", "technical", "account", "shipping", "refund", "product")
SHIFT_CATEGORY = "security"
"""The category that appears part-way through (``shift_at``): the teacher's world changed."""
CHANNELS = ("email", "chat", "web", "phone")
TIERS = ("free", "pro", "enterprise")
REGIONS = ("us", "eu", "apac")
# How urgent the customer says it is: the base priority before the tier bump.
URGENCY_LEVELS = {"critical": 1, "high": 2, "normal": 3, "low": 4}

_PRODUCTS = ("Pro plan", "Team plan", "the mobile app", "the dashboard", "the API", "Sync")
_NAMES = ("Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi")

# {p} product, {n} number, {amt} amount. Every sentence names its category's
# keywords (invoice/charged, error/crash, password/login, package/delivery,
# refund/money back, feature/how do I).
_ISSUES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for {p} this month",
        "my invoice #{n} shows the wrong amount",
        "the billing page charged my card ${amt} extra",
        "why did my bill go up to ${amt} on the last invoice",
        "please fix the duplicate charge on invoice #{n}",
        "my payment failed but the card was still charged",
    ),
    "technical": (
        "{p} crashes with an error when I open it",
        "getting error 500 from {p} since this morning",
        "{p} keeps freezing and will not load",
        "sync is broken, {p} shows a timeout error",
        "the export button throws an error code {n}",
        "{p} is down and returns a blank page",
    ),
    "account": (
        "I cannot log in, my password reset link expired",
        "please change the email address on my account",
        "my account is locked after too many login attempts",
        "how do I add a user to my account for {p}",
        "two-factor login code never arrives for my account",
        "please delete my account and my profile data",
    ),
    "shipping": (
        "my package for order #{n} has not arrived",
        "the delivery tracking for order #{n} is stuck",
        "the courier left my package at the wrong address",
        "when will order #{n} ship, delivery date passed",
        "my parcel arrived damaged in the delivery box",
        "can you change the shipping address for order #{n}",
    ),
    "refund": (
        "I want a refund for order #{n}",
        "please refund the ${amt} I paid for {p}",
        "still waiting for my refund of ${amt}",
        "I returned the item, where is my money back",
        "cancel {p} and refund my last payment",
        "requesting a refund, {p} was not as described",
    ),
    "security": (
        "someone hacked my account and changed the password",
        "I got a phishing email pretending to be {p}",
        "suspicious login to my account from another country",
        "report a security vulnerability in {p}",
        "my API key for {p} was leaked, please revoke it",
        "unknown device signed in to my account, possible breach",
    ),
    "product": (
        "does {p} have a feature to export to PDF",
        "how do I use the new reports feature in {p}",
        "feature request: dark mode for {p}",
        "is there a way to share a folder in {p}",
        "which plan includes the {p} integration feature",
        "how do I set up reminders in {p}",
    ),
}

_URGENCY: dict[str, tuple[str, ...]] = {
    "critical": (
        "URGENT: production is down!",
        "emergency, we are losing sales right now.",
        "critical - the whole team is blocked!",
    ),
    "high": ("please help asap.", "this is urgent.", "need this fixed today."),
    "normal": ("", "thanks.", "please advise."),
    "low": ("no rush.", "whenever you have time.", "low priority, just curious."),
}

_OPENINGS = ("", "Hi, ", "Hello, ", "Hey team, ", "Good morning, ")
# Neutral context: real tickets carry it, and it keeps the student from keying on length.
_CONTEXT = (
    "",
    "",
    " I use {p} every day.",
    " Customer since 2021.",
    " Tried on two browsers.",
    " My colleague saw it too.",
    " Ref {n}.",
)
_CLOSINGS = ("", " - {name}", " Thanks, {name}", " Regards, {name}")

# Teacher self-reported certainty per urgency cue (explicit cues are easier).
_CONFIDENCE = {"critical": 0.97, "high": 0.93, "normal": 0.88, "low": 0.91}


@dataclass(frozen=True)
class Ticket:
    """One generated ticket: the task input and its hidden attributes."""

    input: dict[str, Any]
    category: str
    urgency: str

    @property
    def output(self) -> dict[str, Any]:
        return label(self.input, category=self.category, urgency=self.urgency)


def label(task_input: dict[str, Any], *, category: str, urgency: str) -> dict[str, Any]:
    """The teacher's answer: the category, the priority (1 most urgent) and a confidence.

    Priority is the urgency's base level made one step more urgent for enterprise
    customers (never above 1), the kind of rule real support desks run.
    """
    base = URGENCY_LEVELS[urgency]
    tier = task_input.get("metadata", {}).get("customer_tier")
    priority = max(1, base - 1) if tier == "enterprise" else base
    return {"category": category, "priority": priority, "confidence": _CONFIDENCE[urgency]}


def _ticket(rng: random.Random, shifted: bool = False, share: float = 0.5) -> Ticket:
    category = rng.choice(CATEGORIES)
    if shifted and rng.random() < share:
        category = SHIFT_CATEGORY
    urgency = rng.choices(list(URGENCY_LEVELS), weights=(1, 3, 5, 2))[0]
    issue = rng.choice(_ISSUES[category]).format(
        p=rng.choice(_PRODUCTS), n=rng.randint(10000, 99999), amt=rng.randint(5, 499)
    )
    opening = rng.choice(_OPENINGS)
    if opening:
        issue = issue[0].lower() + issue[1:] if not issue.startswith("I ") else issue
    else:
        issue = issue[0].upper() + issue[1:]
    context = rng.choice(_CONTEXT).format(p=rng.choice(_PRODUCTS), n=rng.randint(1000, 9999))
    cue = rng.choice(_URGENCY[urgency])
    cue = cue[:1].upper() + cue[1:]
    closing = rng.choice(_CLOSINGS).format(name=rng.choice(_NAMES))
    text = f"{opening}{issue}.{context} {cue}".strip() + closing
    metadata = {
        "channel": rng.choice(CHANNELS),
        "customer_tier": rng.choices(TIERS, weights=(5, 3, 2))[0],
        "region": rng.choice(REGIONS),
    }
    return Ticket(input={"text": text, "metadata": metadata}, category=category, urgency=urgency)


def generate(
    n: int, seed: int = 7, *, shift_at: int | None = None, shift_share: float = 0.5
) -> list[Ticket]:
    """``n`` distinct tickets, the same for the same seed.

    From ticket ``shift_at`` on, ``shift_share`` of the tickets are about a new
    category (:data:`SHIFT_CATEGORY`) the student has never seen.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Ticket] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > n * 50:
            raise ValueError(f"cannot generate {n} distinct tickets; ask for fewer")
        shifted = shift_at is not None and len(out) >= shift_at
        ticket = _ticket(rng, shifted, shift_share)
        key = json.dumps(ticket.input, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out.append(ticket)
    return out


def _jsonl(rows: Iterator[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def write_workload(
    directory: Path, n: int, seed: int = 7, *, shift_at: int | None = None
) -> tuple[Path, Path]:
    """Write ``inputs.jsonl`` (one input per line) and the replay teacher's ``answers.jsonl``.

    Returns both paths. ``answers.jsonl`` lines are ``{"input": ..., "output": ...}``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tickets = generate(n, seed, shift_at=shift_at)
    inputs = directory / "inputs.jsonl"
    answers = directory / "answers.jsonl"
    inputs.write_text(_jsonl(t.input for t in tickets), encoding="utf-8")
    answers.write_text(
        _jsonl({"input": t.input, "output": t.output} for t in tickets), encoding="utf-8"
    )
    return inputs, answers
