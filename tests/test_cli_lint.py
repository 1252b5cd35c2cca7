"""The command line: ``policyctl lint``, ``graph`` and ``schema``, their output formats and
exit codes (0 clean, 1 the policy has errors or ``--strict`` warnings, 2 the tool failed or
was called wrongly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from helpers import POLICIES, find_pos, policy_yaml, write
from policyctl.cli import main
from policyctl.codes import CODES

BROKEN = """\
triggers:
  t:
    when: close > sma(close, 20) and nope > 1
    then: buy 2% of equity
"""
WARNING_ONLY = """\
params:
  unused: 3
triggers:
  t: {when: kill_switch, then: close}
"""
DOCUMENTED_KEYS = {"code", "severity", "message", "help", "file", "line", "col", "end_line",
                   "end_col"}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return write(tmp_path, "broken.yaml", policy_yaml(BROKEN))


@pytest.fixture
def warning_only(tmp_path: Path) -> Path:
    return write(tmp_path, "warn.yaml", policy_yaml(WARNING_ONLY))


# ---- exit codes -------------------------------------------------------------------------


def test_clean_policies_exit_0() -> None:
    result = run("lint", str(POLICIES))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")
    assert "no problems" in result.output


def test_broken_policy_exits_1_with_a_located_message(broken: Path) -> None:
    result = run("lint", str(broken))
    assert result.exit_code == 1, result.output
    line, col = find_pos(broken.read_text(), "nope")
    lines = result.output.splitlines()
    assert lines[0] == f"{broken}:{line}:{col}: error[T001]: unknown name `nope`"
    # the source line, then a caret under the name
    assert lines[2].endswith("when: close > sma(close, 20) and nope > 1")
    caret = lines[3]
    assert caret.index("^") - caret.index("|") - 2 == col - 1 and caret.count("^") == 4
    assert lines[-1] == "1 error, 0 warnings"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_rules_files_read_like_yaml_files(tmp_path: Path, newline: bytes, bom: bytes) -> None:
    """A byte-order mark and any line ends: the same problem at the same line and column."""
    text = newline.join([b"trigger a:", b"    when close > opn", b"    then close", b""])
    path = write(tmp_path, "a.rules", bom + text)
    result = run("lint", str(path))
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[0] == f"{path}:2:18: error[T001]: unknown name `opn`"


def test_a_named_test_file_is_pointed_to_policyctl_test() -> None:
    path = POLICIES / "trend.test.yaml"
    assert path.exists()
    result = run("lint", str(path))
    assert result.exit_code == 2
    assert f"a policy test file, not a policy: run `policyctl test {path}`" in result.output


def test_broken_among_clean_policies_exits_1(tmp_path: Path, broken: Path) -> None:
    result = run("lint", str(POLICIES), str(broken))
    assert result.exit_code == 1
    assert "error[T001]" in result.output


def test_missing_file_is_a_policy_problem_not_a_tool_failure(tmp_path: Path) -> None:
    # a path that does not exist is reported like any other problem of the input (I001)
    result = run("lint", str(tmp_path / "nope.yaml"), "--format", "json")
    assert result.exit_code == 1
    assert [d["code"] for d in json.loads(result.output)] == ["I001"]


@pytest.mark.parametrize(
    "args",
    [
        ["lint", "--nope", "policies"],  # an unknown option
        ["lint"],  # no path
        ["lint", "policies", "--format", "xml"],  # an unknown format
        ["lint", "policies", "--param", "fast"],  # --param without NAME=VALUE
        ["lint", "policies", "--param", "=3"],
        ["graph", "policies/trend.yaml", "--format", "png"],
        ["no-such-command"],
    ],
)
def test_wrong_calls_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output


def test_internal_error_exits_2(monkeypatch: pytest.MonkeyPatch, broken: Path) -> None:
    import policyctl.lint

    def explode(*args: object, **kw: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(policyctl.lint, "lint_paths", explode)
    result = run("lint", str(broken))
    assert result.exit_code == 2
    assert "internal error" in result.stderr and "RuntimeError: boom" in result.stderr


def test_strict_turns_a_warning_into_exit_1(warning_only: Path) -> None:
    plain = run("lint", str(warning_only))
    assert plain.exit_code == 0, plain.output
    assert "warning[L015]" in plain.output
    assert plain.output.rstrip().endswith("0 errors, 1 warning")
    strict = run("lint", "--strict", str(warning_only))
    assert strict.exit_code == 1
    assert run("lint", "--strict", str(POLICIES)).exit_code == 0


# ---- formats ----------------------------------------------------------------------------


def test_json_format(broken: Path, warning_only: Path) -> None:
    result = run("lint", "--format", "json", str(broken), str(warning_only))
    assert result.exit_code == 1
    items = json.loads(result.output)
    assert isinstance(items, list) and len(items) == 2
    for item in items:
        assert set(item) <= DOCUMENTED_KEYS
        assert {"code", "severity", "message", "file", "line", "col", "end_line",
                "end_col"} <= set(item)
        assert item["code"] in CODES
        assert item["severity"] in ("error", "warning")
        assert isinstance(item["line"], int) and isinstance(item["col"], int)
    by_code = {i["code"]: i for i in items}
    t001 = by_code["T001"]
    line, col = find_pos(broken.read_text(), "nope")
    assert (t001["file"], t001["line"], t001["col"], t001["end_line"], t001["end_col"]) == (
        str(broken), line, col, line, col + 4)
    assert by_code["L015"]["severity"] == "warning"
    assert "help" in by_code["L015"]


def test_json_format_of_a_clean_run_is_an_empty_list() -> None:
    result = run("lint", "--format", "json", str(POLICIES))
    assert result.exit_code == 0
    assert json.loads(result.output) == []


def test_github_format(broken: Path, warning_only: Path) -> None:
    result = run("lint", "--format", "github", str(broken), str(warning_only))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert all(ln.startswith(("::error ", "::warning ")) for ln in lines)
    error = next(ln for ln in lines if ln.startswith("::error "))
    line, col = find_pos(broken.read_text(), "nope")
    assert f",line={line},col={col},endLine={line},endColumn={col + 4},title=T001::" in error
    assert error.endswith("::unknown name `nope`" + error.split("::unknown name `nope`")[1])
    assert any(ln.startswith("::warning ") and "title=L015" in ln for ln in lines)
    # workflow-command escaping: no raw newline inside one annotation
    assert all("\n" not in ln for ln in lines)


def test_github_format_escapes_properties(tmp_path: Path) -> None:
    path = write(tmp_path / "a,b:c", "p.yaml", policy_yaml(BROKEN))
    result = run("lint", "--format", "github", str(path))
    (line,) = result.output.splitlines()
    assert "file=" + str(path).replace(":", "%3A").replace(",", "%2C") + "," in line


def test_duplicate_diagnostics_are_shown_once(tmp_path: Path) -> None:
    # a cap's metric is checked on its own and inside the comparison: one report
    path = write(tmp_path, "p.yaml", policy_yaml("caps:\n  c: trades(5) <= 4\n"))
    result = run("lint", "--format", "json", str(path))
    assert [d["code"] for d in json.loads(result.output)] == ["T008"]


# ---- --param ----------------------------------------------------------------------------


def test_param_override() -> None:
    trend = str(POLICIES / "trend.yaml")
    assert run("lint", trend, "--param", "fast=10", "--param", "rsi_max=65").exit_code == 0
    bad = run("lint", trend, "--param", "fast=10 +", "--format", "json")
    assert bad.exit_code == 1
    assert [d["code"] for d in json.loads(bad.output)] == ["P003"]
    graph = run("graph", trend, "--param", "fast=10")
    assert graph.exit_code == 0
    assert "sma[10]" in graph.output and "sma[20]" not in graph.output


def test_unknown_param_is_c001() -> None:
    result = run("lint", str(POLICIES / "trend.yaml"), "--param", "fsat=10", "--format", "json")
    assert result.exit_code == 1
    (item,) = json.loads(result.output)
    assert item["code"] == "C001"
    assert item["help"] == "did you mean `fast`?"
    human = run("lint", str(POLICIES / "trend.yaml"), "--param", "fsat=10")
    assert "error[C001]: unknown param `fsat`" in human.output
    assert "fsat=10" in human.output  # the argument is shown as the source line


# ---- graph and schema -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "start"),
    [("text", "# "), ("dot", "digraph policy {"), ("mermaid", "flowchart BT")],
)
def test_graph_formats(fmt: str, start: str) -> None:
    result = run("graph", str(POLICIES / "trend.yaml"), "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(start)
    assert "crosses_above" in result.output and "sma[20]" in result.output


def test_graph_of_a_broken_policy_exits_1(broken: Path) -> None:
    result = run("graph", str(broken))
    assert result.exit_code == 1
    assert "error[T001]" in result.output


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    Draft202012Validator.check_schema(schema)
    assert validator_for(schema) is Draft202012Validator
    # and every shipped policy is valid under it, the broken one is not
    validator = Draft202012Validator(schema)
    for path in sorted(POLICIES.glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue  # policy unit tests, not policies
        doc = yaml.safe_load(path.read_text())
        errors = list(validator.iter_errors(doc))
        assert not errors, (path, [e.message for e in errors])
    assert list(validator.iter_errors({"policy": "x", "market": {"symbols": []}, "bogus": 1}))


def test_schema_matches_the_published_copy() -> None:
    published = POLICIES.parent / "docs" / "policy.schema.json"
    if not published.exists():
        pytest.skip("no published schema")
    assert json.loads(run("schema").output) == json.loads(published.read_text())


def test_each_param_diagnostic_shows_its_own_argument() -> None:
    result = run("lint", str(POLICIES / "trend.yaml"), "--param", "fsat=10",
                 "--param", "rsi_mx=65")
    assert result.exit_code == 1
    blocks = result.output.split("\n\n")
    fsat = next(b for b in blocks if "unknown param `fsat`" in b)
    assert "fsat=10" in fsat and "rsi_mx=65" not in fsat
