"""Apprentice: distil an expensive remote LLM API into a cheap local model, one task at a time."""

__version__ = "0.1.0"
