"""The generated reference documents are committed, and must equal a fresh generation.

``docs/language.md``, ``docs/diagnostics.md`` and ``docs/policy.schema.json`` are built from
the implementation (``policyctl.reference``, ``policyctl.dsl.schema``). When one of these
tests fails, regenerate the files from the project root and review the diff::

    policyctl docs language > docs/language.md
    policyctl docs diagnostics > docs/diagnostics.md
    policyctl schema > docs/policy.schema.json
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyctl import reference
from policyctl.cli import main
from policyctl.codes import CODES
from policyctl.dsl.schema import POLICY_SCHEMA
from policyctl.rules import catalogue as cat

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXAMPLES = REPO / "examples" / "diagnostics"


@pytest.fixture(autouse=True)
def _at_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _committed(name: str) -> str:
    path = DOCS / name
    assert path.exists(), f"{path} is missing: generate it (see this module's docstring)"
    return path.read_text("utf-8")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_language_md_is_up_to_date() -> None:
    assert _committed("language.md") == reference.language_md(), (
        "docs/language.md is stale: policyctl docs language > docs/language.md"
    )


def test_diagnostics_md_is_up_to_date() -> None:
    assert _committed("diagnostics.md") == reference.diagnostics_md(EXAMPLES), (
        "docs/diagnostics.md is stale: policyctl docs diagnostics > docs/diagnostics.md"
    )


def test_schema_json_is_up_to_date() -> None:
    committed = _committed("policy.schema.json")
    assert committed == _cli("schema"), (
        "docs/policy.schema.json is stale: policyctl schema > docs/policy.schema.json"
    )
    assert json.loads(committed) == POLICY_SCHEMA


def test_cli_prints_the_same_documents() -> None:
    assert _cli("docs", "language") == reference.language_md()
    assert _cli("docs", "diagnostics") == reference.diagnostics_md()
    assert _cli("docs", "diagnostics", "--examples", str(EXAMPLES)) == reference.diagnostics_md()


def test_generation_is_deterministic() -> None:
    assert reference.language_md() == reference.language_md()
    assert reference.diagnostics_md(EXAMPLES) == reference.diagnostics_md(EXAMPLES)


def test_every_code_is_documented_with_an_example() -> None:
    text = reference.diagnostics_md(EXAMPLES)
    for code, title in CODES.items():
        assert f"### {code}: {title}\n" in text, code
        section = text.split(f"### {code}: ")[1].split("\n### ")[0]
        assert "Severity: **" in section, f"{code}: no severity (is the example triggering it?)"
        assert f"$ policyctl lint examples/diagnostics/{code}/" in section, code


def test_every_code_has_an_explanation() -> None:
    assert set(reference.EXPLANATIONS) == set(CODES)
    for code, text in reference.EXPLANATIONS.items():
        assert text.strip().endswith("."), code


def test_every_group_prefix_is_covered() -> None:
    prefixes = {code[0] for code in CODES}
    assert prefixes == {prefix for prefix, _, _ in reference.GROUPS}


def test_every_field_and_function_is_in_the_language_reference() -> None:
    text = reference.language_md()
    for name in cat.FIELDS:
        assert f"| `{name}` |" in text, name
    for name in cat.CONSTANTS:
        assert f"| `{name}` |" in text, name
    for name in cat.FUNCTIONS:
        assert f"| `{name}(" in text, name
    for word in cat.KEYWORDS:
        assert f"`{word}`" in text, word


def test_every_schema_key_is_in_the_language_reference() -> None:
    text = reference.language_md()
    for key in POLICY_SCHEMA["properties"]:
        assert f"| `{key}` |" in text, key


def test_diagnostics_md_without_examples_still_lists_every_code(tmp_path: Path) -> None:
    text = reference.diagnostics_md(tmp_path / "nowhere")
    for code in CODES:
        assert f"### {code}: " in text
