"""Golden tests: one failing example per diagnostic code, with its exact output.

Each folder ``examples/diagnostics/<CODE>/`` holds a minimal policy that triggers the code
(``policy.yaml`` or ``policy.rules``, plus any file it includes), an optional ``args.txt``
with extra ``policyctl lint`` arguments, and ``expected.txt``: the exact human output of
``policyctl lint <main file> <args>`` run from the project root, without color. An input too
large to commit is written by the folder's ``generate.py`` before the run and removed after.

After changing a message on purpose, rewrite every ``expected.txt`` instead of comparing::

    POLICYCTL_UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden_diagnostics.py

then review the diff, and regenerate the reference that shows these outputs::

    policyctl docs diagnostics > docs/diagnostics.md
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from policyctl.cli import main
from policyctl.codes import CODES
from policyctl.reference import Example, load_examples, severities

REPO = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO / "examples" / "diagnostics"
UPDATE = os.environ.get("POLICYCTL_UPDATE_GOLDEN") == "1"

# Codes whose example does not (yet) produce the code, with the reason. The test expects the
# gap to persist, and fails once it is fixed so that the entry is removed.
KNOWN_GAPS: dict[str, str] = {}


@contextmanager
def _generated(example: Example) -> Iterator[None]:
    """Run the example's ``generate.py`` (if any) and remove what it wrote afterwards."""
    if example.generator is None:
        yield
        return
    before = set(example.folder.rglob("*"))
    runpy.run_path(str(example.generator), run_name="__main__")
    try:
        yield
    finally:
        for path in set(example.folder.rglob("*")) - before:
            if path.is_file():
                path.unlink()


def _lint(example: Example, *extra: str) -> Result:
    with _generated(example):
        return CliRunner().invoke(main, [*example.command(REPO), *extra])


@pytest.fixture(autouse=True)
def _at_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _example(code: str) -> Example:
    example = load_examples(EXAMPLES_DIR).get(code)
    if example is None:
        pytest.fail(f"no example for {code}: add examples/diagnostics/{code}/")
    return example


@pytest.mark.parametrize("code", list(CODES))
def test_golden_output(code: str) -> None:
    example = _example(code)
    result = _lint(example)
    output = result.output
    if UPDATE:
        example.expected_path.write_text(output, "utf-8")
    expected = example.expected
    assert expected is not None, f"no {example.expected_path}: run with POLICYCTL_UPDATE_GOLDEN=1"
    assert output == expected, (
        f"`policyctl {' '.join(example.command(REPO))}` changed its output; if that is "
        "intended, rerun with POLICYCTL_UPDATE_GOLDEN=1 and review the diff"
    )

    if code in KNOWN_GAPS:
        assert not severities(output, code), (
            f"{code} is reported now: remove it from KNOWN_GAPS ({KNOWN_GAPS[code]})"
        )
        pytest.xfail(KNOWN_GAPS[code])

    assert severities(output, code), f"the example for {code} does not trigger {code}:\n{output}"
    has_errors = "error[" in output
    assert result.exit_code == (1 if has_errors else 0), output


@pytest.mark.parametrize("code", [c for c in CODES if c not in KNOWN_GAPS])
def test_warning_examples_fail_under_strict(code: str) -> None:
    """A warning-only example passes `lint` (exit 0) and fails `lint --strict` (exit 1)."""
    example = _example(code)
    expected = example.expected or ""
    if "error[" in expected or severities(expected, code) != {"warning"}:
        return
    assert _lint(example, "--strict").exit_code == 1


def test_every_code_has_an_example() -> None:
    found = load_examples(EXAMPLES_DIR)
    missing = sorted(set(CODES) - set(found))
    assert not missing, f"codes without an example folder: {missing}"


def test_no_example_for_an_unknown_code() -> None:
    unknown = sorted(set(load_examples(EXAMPLES_DIR)) - set(CODES))
    assert not unknown, f"example folders for codes not in policyctl.codes.CODES: {unknown}"


@pytest.mark.parametrize("code", list(CODES))
def test_example_folder_is_complete(code: str) -> None:
    """Each folder has one main file (or its generator) and the expected output."""
    example = _example(code)
    mains = [name for name in ("policy.yaml", "policy.rules") if (example.folder / name).exists()]
    if example.generator is None:
        assert len(mains) == 1, f"{example.folder} needs exactly one policy.yaml or policy.rules"
    assert example.expected_path.exists()
