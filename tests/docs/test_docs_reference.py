"""The generated references match the code, entry for entry, in both directions.

``make docs-generate`` rewrites them; the first test fails whenever a page differs from
what the code renders now. The others name what is missing or extra, so a failure says
which key, field, flag, metric or code to document (or to delete).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from apprentice.config import ApprenticeConfig
from apprentice.config import errors as config_errors
from apprentice.docs_reference import (
    REFERENCE,
    catalog,
    cli,
    configuration,
    errors,
    http_api,
    markdown,
    resources,
)
from apprentice.docs_reference import metrics as metrics_ref
from apprentice.docs_reference.__main__ import main, pages
from apprentice.kube import status_models

ROOT = Path(__file__).resolve().parents[2]


def page(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(pages()))
def test_each_page_is_what_the_code_renders(name: str) -> None:
    assert page(name) == pages()[name](), f"docs/reference/{name} is stale: make docs-generate"


def test_check_mode_passes_on_the_committed_pages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0, capsys.readouterr().err


def rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split(" | ")]
        for line in text.splitlines()
        if line.startswith("| ")
    ]


def test_every_config_key_has_a_row_and_every_row_a_key() -> None:
    text = page("configuration.md")
    documented: list[str] = []
    for section in re.split(r"\n## ", text)[1:]:
        heading = section.splitlines()[0]
        match = re.search(r"\{#([a-z0-9-]+)\}", heading)
        assert match, heading
        path = next(
            s.path
            for s in configuration.sections()
            if configuration.anchor(s.path) == match.group(1)
        )
        for row in rows(section)[1:]:
            key = row[0].strip("`")
            documented.append(f"{path}.{key}" if path else key)
    assert sorted(documented) == sorted(configuration.keys())
    # Every field of every model the config reaches is among them, nested ones included.
    assert "tasks[].evaluator_options.judges[].rate_limits.tokens_per_minute" in documented
    assert len(documented) == len(set(documented))
    assert {"remote", "local.training.lora_rank", "gateway.orchestrator"} <= set(documented)
    assert set(ApprenticeConfig.model_fields) <= set(documented)


def test_every_crd_field_has_a_row_and_every_row_a_field() -> None:
    text = page("custom-resources.md")
    for crd in resources.load_crds():
        kind = crd["spec"]["names"]["kind"]
        body = text.split(f"\n## {kind} ")[1].split("\n## ")[0]
        tables = [part for part in body.split("\n### ") if part.startswith(("spec ", "status "))]
        documented = [r[0].strip("`") for part in tables for r in rows(part)[1:]]
        assert sorted(documented) == sorted(resources.field_paths()[kind]), kind
        columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        assert all(f"| {c['name']} |" in body for c in columns), kind
    schemas = [c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in resources.load_crds()]
    messages = [m for schema in schemas for _, _, m in resources.rules(schema)]
    assert messages and all(markdown.cell(m) in text for m in messages)


def test_the_condition_catalogue_matches_the_status_model() -> None:
    assert [t for t, _, _ in resources.CONDITIONS["DistilledTask"]] == list(
        status_models.CONDITION_TYPES
    )


def test_every_cli_flag_is_documented() -> None:
    text = page("cli.md")
    for command, flags in cli.all_flags().items():
        body = text.split(f"\n## `apprentice {command}` ")[1].split("\n## ")[0]
        documented = [r[0].strip("`") for r in rows(body)[1:]]
        assert documented == flags, command


def test_every_metric_is_documented_and_every_note_names_a_metric() -> None:
    text = page("metrics.md")
    names = {s.name for s in metrics_ref.series()}
    documented = {r[0].strip("`") for r in rows(text) if r[0].startswith("`apprentice_")}
    assert documented == names
    assert set(metrics_ref.NOTES) <= names


def test_every_alert_has_a_runbook_and_every_runbook_an_alert() -> None:
    alerts = metrics_ref.alerts()
    assert {a.name for a in alerts} == set(metrics_ref.RUNBOOK)
    rules = (ROOT / "charts/apprentice/templates/prometheusrule.yaml").read_text(encoding="utf-8")
    assert len(alerts) == rules.count("- alert:")
    assert all(a.expr and a.summary and a.severity for a in alerts)


def test_every_error_code_has_an_entry_and_every_entry_a_code() -> None:
    produced = errors.codes()
    assert produced - set(catalog.ENTRIES) == set(), "codes without an entry"
    assert set(catalog.ENTRIES) - produced == set(), "entries without a code"
    text = page("errors.md")
    for source, code in produced:
        anchor = config_errors.docs_url(source, code).split("#")[1]
        assert f"{{#{anchor}}}" in text, anchor


def test_the_code_sets_are_what_the_code_raises() -> None:
    assert {"budget_exhausted", "store_unavailable", "method_not_allowed"} <= errors.gateway_codes()
    ops = errors.operator_codes()
    assert {"InvalidSpec", "ApplyFailed", "TrainingFailed", "Alarm", "WaitingForGPU"} <= ops


def test_the_api_page_lists_every_operation() -> None:
    text = page("http-api.md")
    for method, path, _ in http_api.operations():
        assert f"### `{method} {path}`" in text


def test_error_links_point_at_the_published_site() -> None:
    site = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    assert site["site_url"] + "reference/errors/" == config_errors.DOCS


def test_every_config_key_says_what_it_is_for() -> None:
    # An empty description cell means a model field without ``description=`` (and, for a
    # nested section, a model without a docstring): add it to the model, not to the page.
    for row in rows(page("configuration.md")):
        if row[0].startswith("`"):
            assert row[-1] and not row[-1].startswith("See "), row[0]
