"""The ``policyctl`` command line.

Each command imports what it needs when it runs, so ``policyctl --help`` stays fast. Exit
codes are part of the interface: 0 clean, 1 the policy has errors (or warnings under
``--strict``), 2 the tool itself failed or was called wrongly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from policyctl.diagnostics import Diagnostics

EXIT_OK, EXIT_POLICY, EXIT_TOOL = 0, 1, 2


def _params(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, found `{v}`", param_hint="--param")
        out[name.strip()] = value.strip()
    return out


def _fail(message: str) -> NoReturn:
    click.echo(f"policyctl: {message}", err=True)
    sys.exit(EXIT_TOOL)


param_option = click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE",
    help="Override a policy param, e.g. --param fast=10 (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="policyctl")
def main() -> None:
    """Declarative risk policies for crypto trading: lint, test, simulate, run."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["human", "json", "github"]), default="human",
              show_default=True, help="Output format.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@param_option
def lint(paths: tuple[Path, ...], fmt: str, strict: bool, params: tuple[str, ...]) -> None:
    """Check policies (files or folders): every problem, at file:line:col."""
    from policyctl.lint import is_test_file, lint_paths

    tests = [str(p) for p in paths if is_test_file(p)]
    if tests:  # (a folder's test files are left out; one named is a mistake of the command)
        _fail(f"{', '.join(tests)}: a policy test file, not a policy: run `policyctl test {tests[0]}`")
    try:
        diags, files = lint_paths(list(paths), _params(params))
    except click.BadParameter:
        raise
    except Exception as e:  # the tool failed: not the policy's fault
        _fail(f"internal error while linting: {type(e).__name__}: {e}")
    _emit(diags, fmt, files)
    errors = any(d.is_error for d in diags)
    warnings = any(not d.is_error for d in diags)
    sys.exit(EXIT_POLICY if errors or (strict and warnings) else EXIT_OK)


def _emit(diags: Diagnostics, fmt: str, files: list[str]) -> None:
    from policyctl.diagnostics import render_github, render_human, render_json

    if fmt == "json":
        click.echo(render_json(diags))
    elif fmt == "github":
        out = render_github(diags)
        if out:
            click.echo(out)
    else:
        out = render_human(diags, color=sys.stdout.isatty())
        if out:
            click.echo(out)
        if not diags.items:
            click.echo(f"ok: {len(files)} file{'s' * (len(files) != 1)} checked, no problems")


@main.command()
@click.argument("policy", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid"]), default="text",
              show_default=True)
@param_option
def graph(policy: Path, fmt: str, params: tuple[str, ...]) -> None:
    """Print a policy's compiled evaluation graph."""
    from policyctl.diagnostics import Diagnostics, PolicyError
    from policyctl.rules.compiler import load_and_compile
    from policyctl.rules.graph import render_dot, render_mermaid, render_text

    diags = Diagnostics()
    try:
        cp = load_and_compile(policy, _params(params), diags)
    except PolicyError:
        _emit(diags, "human", [])
        sys.exit(EXIT_POLICY)
    render = {"text": render_text, "dot": render_dot, "mermaid": render_mermaid}[fmt]
    click.echo(render(cp.graph))


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="Output format.")
@click.option("--coverage", "coverage_detail", is_flag=True,
              help="List every trigger, cap and breaker with the cases that exercised it.")
@click.option("--run", "select", metavar="REGEX", default=None,
              help="Run only the cases whose `FILE::CASE` id matches the regex.")
@click.option("-v", "--verbose", is_flag=True, help="Show the tested tick of passing cases too.")
def test_cmd(paths: tuple[Path, ...], fmt: str, coverage_detail: bool, select: str | None,
             verbose: bool) -> None:
    """Run policy unit tests (NAME.test.yaml files beside the policies).

    Exit 0 when every case passes, 1 when a case fails or a test file is invalid, 2 when
    the tool fails (no test files found, an internal error).
    """
    import re

    from policyctl.testing import render_human, render_json, run_paths

    if select is not None:
        try:
            re.compile(select)
        except re.error as e:
            raise click.BadParameter(f"not a regular expression: {e}", param_hint="--run") from None
    try:
        result = run_paths(list(paths), select)
    except Exception as e:  # the tool failed: not the tests' fault
        _fail(f"internal error while testing: {type(e).__name__}: {e}")
    if not result.files:
        _fail("no test files (*.test.yaml) found under " + ", ".join(str(p) for p in paths))
    if select is not None and not any(f.cases for f in result.files) and not result.broken_files:
        _fail(f"no test case matches --run {select!r}")
    if fmt == "json":
        click.echo(render_json(result))
    else:
        click.echo(render_human(result, coverage_detail, verbose, color=sys.stdout.isatty()))
    if result.crashed:
        sys.exit(EXIT_TOOL)
    sys.exit(EXIT_OK if result.ok else EXIT_POLICY)


@main.command()
def schema() -> None:
    """Print the JSON Schema of policy files (for editors and yaml-language-server)."""
    from policyctl.dsl.schema import schema_json

    click.echo(schema_json())


@main.command()
@click.argument("what", type=click.Choice(["language", "diagnostics"]))
@click.option("--examples", "examples", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Folder of diagnostic examples [default: examples/diagnostics].")
def docs(what: str, examples: Path | None) -> None:
    """Print generated reference documentation (Markdown)."""
    from policyctl import reference

    if what == "language":
        click.echo(reference.language_md(), nl=False)
    else:
        click.echo(reference.diagnostics_md(examples), nl=False)


def _data_error(e: Exception) -> NoReturn:
    click.echo(f"policyctl: data error: {e}", err=True)
    sys.exit(EXIT_POLICY)


def _compile(policy: Path, params: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from policyctl.diagnostics import Diagnostics, PolicyError
    from policyctl.rules.compiler import load_and_compile

    diags = Diagnostics()
    try:
        return load_and_compile(policy, _params(params), diags)
    except PolicyError:
        _emit(diags, "human", [])
        sys.exit(EXIT_POLICY)


@main.command()
@click.argument("policy", type=click.Path(path_type=Path))
@click.option("--at", "at", required=True, metavar="TIME",
              help="The bar to explain: 2024-01-31T12:00Z or epoch ms (the bar open at that time).")
@click.option("--data", "data", multiple=True, metavar="FILE_OR_DIR",
              help="Candle files (default: the embedded synthetic market).")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the synthetic market and fills.")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True)
@param_option
def explain(policy: Path, at: str, data: tuple[str, ...], seed: int, fmt: str, params: tuple[str, ...]) -> None:
    """Explain the decision on one bar: what fired, how it was sized, what clipped or blocked it."""
    from policyctl import explain as ex
    from policyctl.simulator.data import DataError
    from policyctl.simulator.feed import market_for, parse_time
    from policyctl.simulator.run import SimConfig

    cp = _compile(policy, params)
    try:
        md, _ = market_for(cp, list(data) or None, seed)
        decision, t = ex.explain(cp, md, parse_time(at), SimConfig(seed=seed))
    except DataError as e:
        _data_error(e)
    bar_open = int(md.timestamps[t])
    render = ex.render_human if fmt == "human" else ex.to_json
    click.echo(render(cp, decision, t, bar_open), nl=False)


@main.command()
@click.argument("policy", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the synthetic market and of every random choice of the fill model.")
@click.option("--data", "data", multiple=True, metavar="FILE_OR_DIR",
              help="Candle files or folders (default: the embedded synthetic market).")
@click.option("--bars", type=int, default=None, help="Length of the synthetic market (default 20000).")
@click.option("--from", "start", metavar="TIME", help="First bar to simulate (2024-01-31 or epoch ms).")
@click.option("--to", "end", metavar="TIME", help="Simulate bars opening before this time.")
@click.option("--cash", type=float, default=10_000.0, show_default=True, help="Starting cash (quote currency).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Folder for report.json and report.html (default: out/POLICY-seedN).")
@click.option("--ideal", is_flag=True, help="Fees only: no spread, no slippage (for reference checks).")
@param_option
def simulate(policy: Path, seed: int, data: tuple[str, ...], bars: int | None, start: str | None,
             end: str | None, cash: float, out: Path | None, ideal: bool, params: tuple[str, ...]) -> None:
    """Simulate a policy on the embedded synthetic market or on candle files; write a report."""
    from policyctl.simulator.data import DataError
    from policyctl.simulator.exchange import FillModel
    from policyctl.simulator.feed import market_for
    from policyctl.simulator.html import render_html
    from policyctl.simulator.report import build_report, dumps_report
    from policyctl.simulator.run import SimConfig
    from policyctl.simulator.run import simulate as run

    cp = _compile(policy, params)
    try:
        md, notes = market_for(cp, list(data) or None, seed, bars, start, end)
    except DataError as e:
        _data_error(e)
    fill = FillModel.ideal(cp.settings.get("fees.taker", 0.001)) if ideal else FillModel()
    cfg = SimConfig(seed=seed, cash=cash, fill=fill)
    n = len(md.timestamps)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=n, unit="bar", unit_scale=True, leave=False, desc=cp.policy.name)

    def progress(t: int) -> None:
        if bar is not None:
            bar.update(t - bar.n)

    try:
        result = run(cp, md, cfg, progress=progress)
    except ValueError as e:
        _data_error(e)
    finally:
        if bar is not None:
            bar.close()
    meta: dict[str, object] = {"params": _params(params), "notes": notes,
                               "command": {"seed": seed, "data": list(data), "bars": bars, "from": start,
                                           "to": end, "cash": cash, "ideal": ideal}}
    report = build_report(result, meta)
    folder = out if out is not None else Path("out") / f"{cp.policy.name}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(dumps_report(report), encoding="utf-8")
    (folder / "report.html").write_text(render_html(report), encoding="utf-8")
    summary = report["summary"]
    assert isinstance(summary, dict)
    click.echo(f"{cp.policy.name}: {n} bars, {summary.get('trades')} trades, return "
               f"{_pct(summary.get('total_return'))}, max drawdown {_pct(summary.get('max_drawdown'))}, "
               f"final equity {_money(summary.get('final_equity'))}")
    for note in notes:
        click.echo(f"  {note}")
    click.echo(f"report: {folder / 'report.json'}  {folder / 'report.html'}")


def _money(v: object) -> str:
    return f"{v:,.2f}" if isinstance(v, int | float) else "n/a"


def _pct(v: object) -> str:
    return f"{v * 100:.2f}%" if isinstance(v, int | float) else "n/a"


@main.command("compare")
@click.argument("report", type=click.Path(path_type=Path))
@click.argument("baseline", type=click.Path(path_type=Path))
@click.option("--tolerance", default="0", show_default=True, metavar="TOL",
              help="Relative tolerance of every regression key: 2% or 0.02.")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True)
def compare_cmd(report: Path, baseline: Path, tolerance: str, fmt: str) -> None:
    """Regression gate: compare REPORT's regression keys with BASELINE's (exit 1 if one moved too far)."""
    import json

    from policyctl.simulator.compare import CompareError, compare, load_report, parse_tolerance

    try:
        tol = parse_tolerance(tolerance)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--tolerance") from None
    try:
        res = compare(load_report(report), load_report(baseline), tol)
    except CompareError as e:
        _fail(str(e))
    if fmt == "json":
        click.echo(json.dumps({"report": str(report), "baseline": str(baseline), **res.to_dict()},
                              indent=2, sort_keys=True))
    else:
        click.echo(res.render_human(str(report), str(baseline)))
    sys.exit(EXIT_OK if res.ok else EXIT_POLICY)


@main.command()
@click.argument("journal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy", required=True, type=click.Path(path_type=Path),
              help="The policy to replay with: the journal's own, or a candidate.")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True)
@param_option
def replay(journal: Path, policy: Path, fmt: str, params: tuple[str, ...]) -> None:
    """Replay a journal (state database or exported .jsonl) and compare the decisions.

    Exit 0 when every decision is identical, 1 when some differ (or the policy has errors),
    2 when the journal cannot be read.
    """
    from policyctl.runtime.journal import Journal, JournalError
    from policyctl.runtime.replay import render_human, render_json
    from policyctl.runtime.replay import replay as run

    cp = _compile(policy, params)
    try:
        with Journal.open(journal) as j:
            res = run(cp, j)
    except JournalError as e:
        _fail(str(e))
    click.echo(render_json(res) if fmt == "json" else render_human(res, str(journal)), nl=False)
    sys.exit(EXIT_OK if res.identical else EXIT_POLICY)


@main.command()
@click.argument("policy", type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(["dry-run", "paper", "live"]), default="dry-run", show_default=True,
              help="dry-run: decide and journal only; paper: fill against live quotes; live: real orders.")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True,
              help="Folder of the SQLite state, the journal and the kill switch file.")
@click.option("--exchange-url", metavar="URL", help="Base URL of the exchange API (e.g. the loopback emulator).")
@click.option("--cash", type=float, default=10_000.0, show_default=True,
              help="Starting cash of the simulated account (dry-run and paper).")
@click.option("--confirm-live", is_flag=True,
              help="Required for --mode live, together with POLICYCTL_LIVE_TRADING=yes in the environment.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics bind to.")
@click.option("--json-logs", is_flag=True, help="Structured JSON log lines.")
@click.option("--ticks", type=int, default=None,
              help="Run this many decision cycles now, then exit (instead of scheduling).")
@click.option("--interval", type=float, default=None, metavar="SECONDS",
              help="Tick every SECONDS instead of on candle closes (for an emulator replaying fast).")
@param_option
def run(policy: Path, mode: str, state_dir: Path, exchange_url: str | None, cash: float, confirm_live: bool,
        metrics_port: int | None, metrics_host: str, json_logs: bool, ticks: int | None,
        interval: float | None, params: tuple[str, ...]) -> None:
    """Run a policy on the candle clock against an exchange (dry-run by default)."""
    from policyctl.exchanges.adapter import AdapterError
    from policyctl.runtime.app import Options, StartError, build
    from policyctl.runtime.store import StoreError

    cp = _compile(policy, params)
    opts = Options(mode=mode, state_dir=state_dir, exchange_url=exchange_url, cash=cash,
                   confirm_live=confirm_live, metrics_port=metrics_port, metrics_host=metrics_host,
                   json_logs=json_logs)
    try:
        rt = build(cp, opts)
    except (StartError, StoreError, AdapterError, RuntimeError) as e:
        _fail(f"cannot start: {e}")
    if ticks is not None:
        for _ in range(ticks):
            rt.tick()
            rt.check_kill()
            rt.reconcile()
        rt.shutdown(cancel_open=False)
        d = rt.last_decision
        if d is not None:
            click.echo(f"{ticks} tick(s); state {d.trading_state.value}, equity {d.equity:,.2f}, "
                       f"{len(d.orders)} order(s) on the last tick")
        sys.exit(EXIT_OK)
    from policyctl.runtime.scheduler import run_forever

    sys.exit(run_forever(rt, cancel_on_shutdown=bool(cp.flags.get("cancel_on_shutdown", False)),
                         interval_s=interval))


@main.command()
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True)
@click.option("--off", is_flag=True, help="Release the kill switch.")
@click.option("--reason", default="operator", show_default=True)
def kill(state_dir: Path, off: bool, reason: str) -> None:
    """Pull the kill switch: the runtime cancels every open order and halts within a second."""
    from policyctl.runtime.killswitch import KillSwitch, pull, runtime_pid

    if off:
        KillSwitch(state_dir).release()
        click.echo("kill switch released")
        return
    pull(state_dir, reason)
    pid = runtime_pid(state_dir)
    click.echo(f"kill switch pulled ({'runtime pid ' + str(pid) + ' signalled' if pid else 'no runtime running'})")


@main.command()
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True)
@click.option("--last", type=int, default=5, show_default=True, help="How many recent decisions to show.")
def status(state_dir: Path, fmt: str, last: int) -> None:
    """Show the trading state, positions, breakers and the last decisions of a runtime."""
    from policyctl.runtime.status import read_status, render_status

    try:
        st = read_status(state_dir / "state.sqlite", last)
    except FileNotFoundError:
        _fail(f"no runtime state in {state_dir}")
    click.echo(render_status(st, fmt), nl=False)


@main.command()
@click.argument("breaker", required=False)
@click.option("--all", "all_", is_flag=True, help="Reset every tripped breaker.")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True)
def reset(breaker: str | None, all_: bool, state_dir: Path) -> None:
    """Reset a tripped breaker (one without a duration stays tripped until reset)."""
    from policyctl.runtime.operator import apply_resets, request_reset
    from policyctl.runtime.store import StateStore, StoreError, StoreLocked

    if not breaker and not all_:
        _fail("name a breaker, or give --all")
    db = state_dir / "state.sqlite"
    if not db.exists():
        _fail(f"no runtime state in {state_dir}")
    from policyctl.runtime.status import read_status

    info = read_status(db, 0)
    tripped = sorted(info.state.trips) if info.state is not None else []
    if breaker and breaker not in tripped:  # (a running runtime saves the state every tick: this is current)
        _fail(f"breaker `{breaker}` is not tripped" + (f" (tripped: {', '.join(tripped)})" if tripped else
                                                         " (no breaker is tripped)"))
    request_reset(state_dir, None if all_ else breaker)
    try:
        store = StateStore(db, _stored_policy_name(db), info.policy_hash or "")
    except StoreLocked as e:
        click.echo(f"a runtime is running (pid {e.pid}): the reset is applied within a second")
        return
    except StoreError as e:
        _fail(str(e))
    with store:
        state = store.load_state()
        if state is None:
            _fail("no stored state to reset")
        cleared = apply_resets(state, state_dir)
        # journaled at the state's own time (the exchange's clock), not this machine's
        store.save_state(state, state.now, reason="operator reset: " + (", ".join(cleared) or "nothing tripped"))
    click.echo(f"reset: {', '.join(cleared) if cleared else 'no breaker was tripped'}")


def _stored_policy_name(db: Path) -> str:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'policy_name'").fetchone()
    finally:
        con.close()
    return str(row[0]) if row else ""


if __name__ == "__main__":  # pragma: no cover
    main()
