"""Generate the reference pages of the documentation site from the code.

``python -m apprentice.docs_reference --write`` (``make docs-generate``) rewrites
``docs/reference/``; ``--check`` exits 1 when a page differs from what the code says.
Each page comes from the one source of truth for its subject, so a key, field, flag,
metric or error code cannot exist without its entry, nor an entry outlive its code:

    configuration.md      the pydantic models in apprentice.config
    custom-resources.md   crds/*.yaml (generated from the same models)
    http-api.md           the gateway's OpenAPI document (apprentice.gateway.openapi)
    cli.md                the argparse parser (apprentice.cli, apprentice.commands)
    metrics.md            apprentice.reporting.metrics, apprentice.kube.metrics, and the
                          chart's PrometheusRule template
    errors.md             the gateway's error tree, the teachers' reasons, the config
                          loader's codes, the operator's Warning reasons, CLI exit codes

Nothing imports this package at run time; it sits outside the layers contract because it
reads every layer.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
"""The repository root (``crds/``, ``charts/`` and ``docs/`` are read from it)."""

REFERENCE = ROOT / "docs" / "reference"
