"""The regression gate: tolerance rules, warnings, and `policyctl compare` exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policyctl.cli import main
from policyctl.simulator.compare import CompareError, compare, load_report, parse_tolerance


def make_report(**keys: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "initial_cash": 10_000.0,
        "final_equity": 9_500.0,
        "total_return": -0.05,
        "max_drawdown": 0.08,
        "trades": 60,
        "win_rate": 0.4,
        "fees": 150.0,
        "slippage": 40.0,
        "fills": 120,
        "denials_total": 10,
        "breaker_trips": 1,
    }
    base.update(keys)
    return {
        "format": "policyctl-simulation-report",
        "version": 1,
        "metadata": {"policy": "p", "policy_hash": "abc", "seed": 42, "params": {"fast": 20.0},
                     "initial_cash": 10_000.0, "timeframe": "5m", "first_bar": "2024-01-01T00:00:00Z",
                     "last_bar": "2024-01-02T00:00:00Z", "fill_model": {"taker_fee": 0.001},
                     "versions": {"policyctl": "0.1.0"},
                     "data": [{"path": "a.csv", "sha256": "11", "rows": 100}]},
        "regression_keys": base,
    }


def test_parse_tolerance() -> None:
    assert parse_tolerance("2%") == pytest.approx(0.02)
    assert parse_tolerance(" 0.5 % ") == pytest.approx(0.005)
    assert parse_tolerance("0.02") == pytest.approx(0.02)
    assert parse_tolerance("0") == 0.0
    assert parse_tolerance("1") == 1.0
    for bad in ("2", "-1%", "abc", "nan", ""):
        with pytest.raises(ValueError):
            parse_tolerance(bad)


def test_identical_reports_pass_with_zero_tolerance() -> None:
    res = compare(make_report(), make_report(), 0.0)
    assert res.ok and res.changes == [] and not res.warnings
    assert "final_equity" in res.unchanged


def test_relative_tolerance_on_amounts() -> None:
    base = make_report()
    res = compare(make_report(final_equity=9_500.0 * 1.019), base, 0.02)
    assert res.ok
    [c] = res.changes
    assert c.key == "final_equity" and c.rel_change == pytest.approx(0.019)
    assert c.allowed == pytest.approx(190.0)
    res = compare(make_report(final_equity=9_500.0 * 0.979), base, 0.02)
    assert not res.ok and [c.key for c in res.failures] == ["final_equity"]


def test_absolute_floor_near_zero() -> None:
    # a return of 0.0001 moving to 0.0003 is noise: the floor is one percentage point * tolerance
    base = make_report(total_return=0.0001)
    assert compare(make_report(total_return=0.0003), base, 0.02).ok
    assert not compare(make_report(total_return=0.0004), base, 0.02).ok
    # fees of 0 moving to 1.5 on 10,000 of cash: the floor is 1% of the cash * tolerance = 2
    assert compare(make_report(fees=1.5), make_report(fees=0.0), 0.02).ok
    assert not compare(make_report(fees=2.5), make_report(fees=0.0), 0.02).ok
    # with zero tolerance nothing may move
    assert not compare(make_report(total_return=0.0001000001), base, 0.0).ok


def test_counts_move_by_whole_units_only() -> None:
    base = make_report(trades=60, breaker_trips=1)
    assert compare(make_report(trades=61), base, 0.02).ok  # 2% of 60 = 1.2 -> 1 trade
    assert not compare(make_report(trades=62), base, 0.02).ok
    assert not compare(make_report(breaker_trips=2), base, 0.02).ok  # 2% of 1 rounds down to 0
    assert compare(make_report(trades=57), make_report(trades=50), 0.14).ok  # 0.14 * 50 = 7
    res = compare(make_report(trades=62), base, 0.02)
    assert res.failures[0].allowed == 1.0 and res.failures[0].kind == "count"


def test_missing_none_and_new_keys() -> None:
    new = make_report()
    del new["regression_keys"]["fees"]
    new["regression_keys"]["sharpe"] = 1.2
    res = compare(new, make_report(), 0.5)
    assert not res.ok
    assert [(c.key, c.missing) for c in res.failures] == [("fees", True)]
    assert res.added == ["sharpe"]
    assert compare(make_report(win_rate=None), make_report(win_rate=None), 0.0).ok
    assert not compare(make_report(win_rate=0.5), make_report(win_rate=None), 0.5).ok


def test_input_differences_are_warnings_not_failures() -> None:
    new = make_report()
    new["metadata"]["policy_hash"] = "def"
    new["metadata"]["data"][0]["sha256"] = "22"
    new["metadata"]["seed"] = 7
    res = compare(new, make_report(), 0.0)
    assert res.ok
    text = " ".join(res.warnings)
    assert "policy hash differs" in text and "data fingerprints differ" in text and "seed differs" in text
    moved = make_report()
    moved["metadata"]["data"][0]["path"] = "/elsewhere/a.csv"
    res = compare(moved, make_report(), 0.0)
    assert not res.warnings and "identical" in res.notes[0]


def test_not_a_report() -> None:
    with pytest.raises(CompareError):
        compare({"summary": {}}, make_report(), 0.0)
    with pytest.raises(ValueError):
        compare(make_report(), make_report(), -0.1)


def write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(json.dumps(report))
    return path


def test_cli_pass_fail_and_json(tmp_path: Path) -> None:
    base = write(tmp_path / "base.json", make_report())
    same = write(tmp_path / "same.json", make_report())
    moved = write(tmp_path / "moved.json", make_report(final_equity=9_000.0, trades=61))
    runner = CliRunner()

    r = runner.invoke(main, ["compare", str(same), str(base), "--tolerance", "2%"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("ok:")

    r = runner.invoke(main, ["compare", str(moved), str(base), "--tolerance", "2%"])
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output and "final_equity" in r.output and "9,500" in r.output

    r = runner.invoke(main, ["compare", str(moved), str(base), "--tolerance", "0.06", "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ok"] is True and out["tolerance"] == pytest.approx(0.06)
    assert [c["key"] for c in out["changes"]] == ["final_equity", "trades"]
    eq = out["changes"][0]
    assert (eq["baseline"], eq["report"], eq["rel_change"]) == (9500.0, 9000.0, pytest.approx(-500 / 9500))

    r = runner.invoke(main, ["compare", str(moved), str(base), "--format", "json"])
    assert r.exit_code == 1
    assert json.loads(r.output)["failures"] == ["final_equity", "trades"]


def test_cli_errors_exit_2(tmp_path: Path) -> None:
    base = write(tmp_path / "base.json", make_report())
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    other = write(tmp_path / "other.json", {"hello": 1})  # type: ignore[arg-type]
    runner = CliRunner()
    for args in (
        [str(tmp_path / "missing.json"), str(base)],
        [str(broken), str(base)],
        [str(base), str(other)],
        [str(base), str(base), "--tolerance", "lots"],
    ):
        r = runner.invoke(main, ["compare", *args])
        assert r.exit_code == 2, (args, r.output)
    with pytest.raises(CompareError, match="not valid JSON"):
        load_report(broken)


def test_a_real_report_round_trip(tmp_path: Path) -> None:
    """Compare a dumped report with itself and with a perturbed copy."""
    from policyctl.rules.compiler import load_and_compile
    from policyctl.simulator.report import build_report, dumps_report
    from policyctl.simulator.run import SimConfig, simulate
    from policyctl.simulator.synthetic import synthetic_market

    cp = load_and_compile(Path(__file__).resolve().parents[1] / "policies" / "trend.yaml")
    md = synthetic_market(42, bars=1500, timeframe=cp.policy.market.timeframe, symbols=cp.symbols)
    rep = json.loads(dumps_report(build_report(simulate(cp, md, SimConfig(seed=42)), {})))
    (tmp_path / "a.json").write_text(dumps_report(rep))
    worse = copy.deepcopy(rep)
    worse["regression_keys"]["final_equity"] *= 0.9
    (tmp_path / "b.json").write_text(dumps_report(worse))
    runner = CliRunner()
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    assert runner.invoke(main, ["compare", a, a]).exit_code == 0
    r = runner.invoke(main, ["compare", b, a, "--tolerance", "5%"])
    assert r.exit_code == 1 and "final_equity" in r.output
