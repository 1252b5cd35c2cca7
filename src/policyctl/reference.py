"""Generated reference documentation: ``docs/diagnostics.md`` and ``docs/language.md``.

Both documents are built from the implementation, so they cannot disagree with it:

* :func:`diagnostics_md` from :data:`policyctl.codes.CODES` and the examples under
  ``examples/diagnostics/<CODE>/`` (a failing policy and the exact ``policyctl lint`` output,
  which the golden tests also check), plus a short explanation of each code written here.
* :func:`language_md` from the JSON Schema of policy files (``dsl.schema``), the grammar
  (``dsl/grammar.lark``), the unit algebra (``rules.types``), the three-valued logic
  (``rules.ops``), the settings the compiler types (``rules.compiler``) and the catalogue
  of fields and functions (``rules.catalogue``).

The output is deterministic: the same sources give byte-for-byte the same Markdown, and
``tests/test_reference_docs.py`` holds the committed files to it. ``policyctl docs
language`` and ``policyctl docs diagnostics`` print them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from policyctl.codes import CODES

EXAMPLES = Path("examples") / "diagnostics"
"""Where the examples are, relative to the project root (the CLI runs from there)."""

MAIN_FILES = ("policy.yaml", "policy.rules")
"""The file ``policyctl lint`` is run on, in each example folder."""

GENERATOR = "generate.py"
"""An example too large to commit is written by this script, next to it."""

_META_FILES = frozenset({"expected.txt", "args.txt", GENERATOR, ".gitignore"})


# ======================================================================================
# Examples


@dataclass(frozen=True)
class Example:
    """One folder of ``examples/diagnostics``: a failing policy and its expected output."""

    code: str
    folder: Path

    @property
    def main(self) -> Path:
        """The file to lint (``policy.yaml`` unless the folder holds a ``policy.rules``)."""
        for name in MAIN_FILES:
            if (self.folder / name).exists():
                return self.folder / name
        return self.folder / MAIN_FILES[0]  # written by generate.py

    @property
    def generator(self) -> Path | None:
        path = self.folder / GENERATOR
        return path if path.exists() else None

    @property
    def args(self) -> list[str]:
        """Extra command-line arguments, from ``args.txt`` (one line, split on blanks)."""
        path = self.folder / "args.txt"
        return path.read_text("utf-8").split() if path.exists() else []

    @property
    def expected_path(self) -> Path:
        return self.folder / "expected.txt"

    @property
    def expected(self) -> str | None:
        path = self.expected_path
        return path.read_text("utf-8") if path.exists() else None

    def companions(self) -> list[Path]:
        """Other input files of the example (includes), in path order."""
        main = self.main
        ignored = set()
        if self.generator is not None:
            gitignore = self.folder / ".gitignore"
            if gitignore.exists():
                ignored = {self.folder / line.strip()
                           for line in gitignore.read_text("utf-8").splitlines() if line.strip()}
        return sorted(
            p for p in self.folder.rglob("*")
            if p.is_file() and p != main and p.name not in _META_FILES and p not in ignored
        )

    def command(self, root: Path | None = None) -> list[str]:
        """The ``policyctl lint`` arguments, with the main file relative to ``root``."""
        return ["lint", _shown(self.main, root), *self.args]


def _shown(path: Path, root: Path | None = None) -> str:
    """A path as the CLI shows it: relative to ``root`` (the current directory) if inside."""
    base = (root or Path.cwd()).resolve()
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return os.path.relpath(path.resolve(), base).replace(os.sep, "/")


def load_examples(root: Path | None = None) -> dict[str, Example]:
    """Every example folder under ``root`` (default ``examples/diagnostics``), by code."""
    root = root if root is not None else EXAMPLES
    if not root.is_dir():
        return {}
    return {p.name: Example(p.name, p) for p in sorted(root.iterdir()) if p.is_dir()}


def severities(output: str, code: str) -> set[str]:
    """The severities ``code`` is reported with in a rendered human output."""
    return set(re.findall(rf"\b(error|warning)\[{re.escape(code)}\]", output))


# ======================================================================================
# Markdown helpers


def _fence(text: str, lang: str = "") -> str:
    text = text if text.endswith("\n") else text + "\n"
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}{fence}\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _ticks(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    slug = re.sub(r"[^\w\- ]", "", title.lower()).strip()
    return slug.replace(" ", "-")


# ======================================================================================
# docs/diagnostics.md

GROUPS: tuple[tuple[str, str, str], ...] = (
    ("Y", "Reading and YAML",
     "The file could not be read as one well-formed YAML document. After most of these "
     "nothing more of the file is checked; after a duplicate key, a tag, a key that is not a "
     "name, a non-finite number or a bad merge key the rest of the file still is."),
    ("S", "Structure",
     "The YAML is well formed, but a key or value does not fit the shape of a policy file "
     "(its JSON Schema: `policyctl schema`)."),
    ("I", "Includes",
     "A file named in `include:` could not be loaded."),
    ("P", "Expression syntax",
     "An expression of the policy language (in a `when:`, a `then:`, a limit, a setting, or "
     "a `.rules` file) does not parse."),
    ("T", "Names, types and units",
     "The expression parses, but a name is unknown, a value has the wrong type or unit, or "
     "a rule asks for something the engine cannot evaluate."),
    ("L", "Sanity checks across a policy",
     "Each rule is valid on its own, but together they contradict each other or cannot do "
     "what they seem to say. Most are warnings: they fail `policyctl lint` only with "
     "`--strict`."),
    ("C", "Command-line configuration",
     "The policy is fine, but the command line does not fit it."),
)

EXPLANATIONS: dict[str, str] = {
    "Y001": "The file contains bytes that are not UTF-8, usually because an editor saved it "
    "as Latin-1 or Windows-1252. Re-save the file as UTF-8; the caret points at the first bad "
    "byte.",
    "Y002": "The file contains a NUL byte or a control character, so it is not a text file: "
    "typically a UTF-16 export from a Windows editor, or a binary file named by mistake. Save "
    "the policy as plain UTF-8 text.",
    "Y003": "The file has no YAML content: it is empty, or every line is a comment. Write the "
    "policy, or leave the file out of the paths you lint.",
    "Y004": "The YAML itself does not parse: a tab used for indentation, an unclosed bracket "
    "or quote, a missing `:`. The message is the YAML reader's; fix the text at the caret "
    "(YAML indents with spaces only).",
    "Y005": "The same key appears twice in one mapping, so one of the two definitions would "
    "be silently lost. Rename one (two caps need two names) or delete the stale one.",
    "Y006": "Aliases (`*name`) expand to more than 10000 nodes, or an alias refers to the "
    "node that contains it. Policies rarely need anchors: write the values out, or use "
    "params.",
    "Y007": "Lists or mappings are nested more than 64 levels deep. No policy needs that; the "
    "file was probably generated wrongly.",
    "Y008": "A YAML tag such as `!env`, `!include` or `!!python/object` is used. Policy files "
    "hold plain data only: write the value itself, use `include:` for other files, and "
    "`--param NAME=VALUE` to vary a param per run.",
    "Y009": "The file holds several YAML documents separated by `---`. One file is one "
    "policy: split the documents into separate files.",
    "Y010": "A key is a list or a mapping (`[a, b]: ...`) instead of a name. Give the rule a "
    "name and say inside it which symbols it is about: `exposure.symbol of \"BTC/USDT\" <= "
    "10%`, or a trigger's `symbols:` list.",
    "Y011": "A number is `.inf` or `.nan`. Every value of a policy must be finite: write the "
    "value you mean, or remove the key.",
    "Y012": "The file is larger than a policy can be (the message gives the limit): a data "
    "dump or a log was pasted into it, or the wrong file was named. Keep data out of policy "
    "files.",
    "Y013": "A value carries an explicit YAML tag (`!!float`, `!!int`, `!!bool`) but is not "
    "a valid value of that type, such as `!!float 2%`. Remove the tag: expressions with units "
    "are written as plain values (`price_collar: 2%`).",
    "Y014": "A merge key `<<` is given something other than a mapping or a list of mappings, "
    "usually a name without its `*` (`<<: golden_cross` instead of `<<: *golden_cross`). "
    "Refer to the anchored mapping with `*`.",
    "S001": "A key the policy format does not have: usually a typo (`trigers:`) or a key at "
    "the wrong level. The help suggests the closest key, or where the key belongs; the "
    "[language reference](language.md#policy-files) lists every key.",
    "S002": "A key the policy cannot do without is missing: `policy` and `market` at the top, "
    "`symbols` and `timeframe` in `market`, `when` and `then` in every trigger and breaker, "
    "`limit` in a cap written as a mapping.",
    "S003": "A value has the wrong shape: a single string where a list is expected "
    "(`symbols: BTC/USDT`), a mapping where an expression is expected, or no value at all. "
    "Write it in the form the message asks for.",
    "S004": "A value has the right type but is not allowed: a symbol not written "
    "`BASE/QUOTE`, a timeframe such as `5min`, an unknown `order_type` or `on_breach`, a "
    "duplicate or empty list, an invalid name. The help says what is accepted.",
    "I001": "A file named in `include:` (or on the command line) does not exist. Include "
    "paths are relative to the folder of the file that includes them.",
    "I002": "Files include each other in a loop: `policy.yaml` includes `limits.yaml`, which "
    "includes `policy.yaml`. Remove the include that points back; shared rules belong in a "
    "file that includes nothing.",
    "I003": "The path exists but cannot be used as a policy file: a folder, a file that is "
    "neither `.rules` nor YAML, or one that cannot be read. Include each "
    "`.rules` or YAML file by name.",
    "I004": "A policy pulls in more than 64 files through `include:`. Merge small rule files "
    "into fewer ones.",
    "P001": "The parser met a token it cannot use at that point, such as a chained comparison "
    "(`40 < rsi(close, 14) < 60`) or two values with no operator between them. Write "
    "`40 < rsi(close, 14) and rsi(close, 14) < 60`; the help lists what could come instead.",
    "P002": "A character that is not part of the language, often an operator from another "
    "language (`&&`, `||`, `!`) or a quote not closed on its line. Use `and`, `or`, `not`, "
    "and double quotes.",
    "P003": "The expression stops before it is complete: a `stop`, `take` or `per` without its "
    "value, an operator with nothing after it, an unclosed `(`. Finish the expression.",
    "P004": "An expression nests more than 100 levels of operators, calls and indexes, "
    "usually because it was generated. Use the builtin that computes it: `sma(close, 101)` "
    "rather than a sum of 101 closes.",
    "P005": "A number is too large to represent (`1e999`). Write the value you mean; a limit "
    "you do not want is better removed than made huge.",
    "P006": "A `when`, `then`, limit or setting is empty. Write the expression, or remove "
    "the rule.",
    "P007": "An action says `stop` or `take` twice. Keep one; the caret points at the second.",
    "T001": "A name or function the language does not know: a typo, an undeclared param, a "
    "function used as a value or a value called as a function. The help suggests the "
    "closest name; the [language reference](language.md#fields) lists them all.",
    "T002": "A function is called with the wrong number of arguments. The help shows its "
    "signature and an example.",
    "T003": "A value has the wrong type for where it is used: a plain number where a "
    "percentage is expected (`buy 2 of equity`), money where a condition is expected. Write "
    "the value with the unit the message asks for (`buy 2% of equity`).",
    "T004": "The units of an operation do not fit: a price compared with a bare number "
    "(`close < 50000`), a duration added to money, a percentage compared with a number. "
    "Write the literal with its unit: `50000 USDT`, `5%`, `90s`.",
    "T005": "Money in one currency is used where another is expected: an order size in "
    "`USD` for a market quoted in `USDT`, or prices of two quote currencies combined. Use "
    "the policy's quote currency.",
    "T006": "An indicator, a cross or history (`x[1]`) is applied to something that is not "
    "candle data, such as `equity` or a constant. Indicators run over market series "
    "(`close`, `volume`, `high - low`); account state has no history.",
    "T007": "A per-symbol value (`close`, `position.pnl`) is used where the policy is "
    "evaluated once for the whole portfolio: in a breaker, a param, a setting, or the limit "
    "of a portfolio-wide cap. Name the symbol with `of \"BTC/USDT\"`, or ask about all "
    "symbols with `any(...)` or `all(...)`.",
    "T008": "A window or duration cannot be used: not a whole number of bars, not a multiple "
    "of the timeframe (`7m` on 5-minute bars), not constant, or not positive. Use a number of "
    "bars or a multiple of the timeframe.",
    "T009": "`and`, `or`, `not`, `any` or `all` is applied to a value rather than a "
    "condition (`not position.size`). Compare the value (`position.size == 0`), or use the "
    "condition you mean (`not position.open`).",
    "T010": "A quoted string is used as a value (`rsi(close, \"14\")`). Strings only name a "
    "symbol or a theme after `of`; write numbers without quotes.",
    "T011": "`of` names a symbol or theme the market does not have (`\"BTC/USD\"` when the "
    "market lists `BTC/USDT`), or asks a symbol's value of a theme. Use a symbol of "
    "`market.symbols` or a theme of `market.themes`.",
    "T012": "An order is sized by risk (`buy risk 1% of equity`) without a stop distance, so "
    "its quantity cannot be computed. Add `stop 3%`, or give the distance with `per`: "
    "`risk 1% of equity per 2 * atr(14)`.",
    "T013": "A cap must put an upper limit on a quantity the engine can hold down before an "
    "order is sent: exposure, open positions or orders, position value, trades in a window. "
    "Losses belong in breakers: `pnl(1d) <= -3%` is a breaker's `when`.",
    "T014": "A cap's mode does not fit: an `on_breach` other than `clip` or `block`, or "
    "`clip` on a count (`trades`, `positions.open`, `orders.open`), which cannot be shrunk. "
    "Counts can only `block`.",
    "T015": "A rule or param is named with a reserved word of the language (`buy`, `close`, "
    "`risk`, ...). Pick another name, such as `entry` or `golden_cross`.",
    "T016": "A param or setting must be a constant, but its value depends on the market or "
    "the account (`2% * equity`). Params hold numbers with units; put the logic in the rule "
    "(`buy 2% of equity`).",
    "T017": "Params are defined in terms of each other in a loop (`fast: slow / 2` and "
    "`slow: fast * 2`). Give one of them a value.",
    "T018": "A rule names a symbol or strategy the policy does not declare: a trigger's "
    "`symbols:` outside `market.symbols`, a theme listing an unknown symbol, a `strategy:` "
    "missing from `strategies:`. Declare it, or fix the name.",
    "L001": "A per-symbol exposure cap is above the cap of a theme the symbol belongs to, so "
    "the theme cap always binds first. Lower the per-symbol cap or raise the theme cap.",
    "L002": "The theme caps add up to more than 100% of equity, so the themes can never all "
    "be full at once. Check that the caps say what you mean.",
    "L003": "A buy's stop-loss sits at or above its take-profit, typically because the stop "
    "was written as a signed move (`stop -5%`). Stop and take are distances from the entry "
    "price, both positive: `stop 5% take 10%`.",
    "L004": "A trade cap over a longer window can never bind, because a shorter-window cap "
    "already allows fewer trades over that window: 2 per hour is at most 48 a day, so "
    "`trades(1d) <= 60` never stops anything. Lower it or remove it.",
    "L005": "A trade cap over a shorter window allows as many trades as a cap over a longer "
    "window, so the shorter one can never bind. Lower it below the longer one, or remove it.",
    "L006": "A fee or slippage setting is outside plausible bounds: fees between -0.1% and 1% "
    "(maker no higher than taker), slippage up to 5%. Usually `%` was written for `bps`.",
    "L007": "Order timeouts are out of order. An order first waits as a maker "
    "(`maker_wait`), then is pending (`pending_ttl`), then is stale (`stale_after`), so each "
    "must be shorter than the next.",
    "L008": "A breaker stops trading for longer than the window its condition looks at: by "
    "the time it ends, the losses that tripped it have left the window. A shorter duration "
    "or a longer lookback usually says what you mean.",
    "L009": "The `dust` threshold is above `min_trade`, so a position between the two is too "
    "small to trade and could never be closed. Make `dust` smaller than `min_trade`.",
    "L010": "A trigger's or breaker's condition is always or never true, given the range of "
    "every value it reads (a change below -100%, an RSI above 100). Usually a wrong unit or a "
    "typo in a threshold.",
    "L011": "Two rules of one kind, or two params, share a name, often one in the policy and "
    "one in an included file; the second is ignored. Rename one, or remove the copy.",
    "L012": "A param has the name of a builtin field or function (`atr`, `spread`). Where the "
    "name is used as a value the param wins, which makes the policy hard to read; rename it "
    "(`atr_window`).",
    "L013": "A stop-loss or take-profit distance is implausible: a stop of 0% or less, or of "
    "100% or more, or a take-profit of 0% or less. Both are positive distances from the "
    "entry price.",
    "L014": "A cap can never bind: an exposure cap of 100% or more, a per-symbol or theme cap "
    "at or above the total exposure cap, or `positions.open` at or above the number of "
    "symbols traded. Lower it or remove it.",
    "L015": "A param is declared but no rule uses it: left over from an edit, or misspelt "
    "where it was meant to be used. Remove it or use it.",
    "C001": "`--param NAME=VALUE` names a param the policy does not declare. Check the "
    "spelling against the policy's `params:`; the help suggests the closest one.",
}

_SAMPLE_CODE = "T004"


def diagnostics_md(examples: Path | None = None) -> str:
    """The diagnostic reference: every code, what causes it, how to fix it, an example.

    ``examples`` is the folder of examples, by default ``examples/diagnostics`` relative to
    the current directory (the project root, where the CLI is run).
    """
    root = examples if examples is not None else EXAMPLES
    found = load_examples(root)
    out: list[str] = []
    w = out.append
    w("# Diagnostic codes\n\n")
    w("<!-- Generated by `policyctl docs diagnostics > docs/diagnostics.md`: do not edit. -->\n\n")
    w("`policyctl lint` reports every problem of a policy as a *diagnostic* with a stable code. "
      "A code keeps its meaning forever: scripts and CI rules can match on it. This page "
      "explains each code and shows a minimal policy that triggers it, with the exact output "
      "(the examples live in `examples/diagnostics/` and are run as tests).\n\n")
    w(_reading(found.get(_SAMPLE_CODE)))
    w("## Codes\n\n")
    for prefix, title, _ in GROUPS:
        codes = [c for c in CODES if c.startswith(prefix)]
        links = ", ".join(f"[{c}](#{_anchor(f'{c}: {CODES[c]}')})" for c in codes)
        w(f"- **{prefix}** [{title}](#{_anchor(f'{prefix}: {title}')}): {links}\n")
    w("\n")
    for prefix, title, intro in GROUPS:
        w(f"## {prefix}: {title}\n\n{intro}\n\n")
        for code in [c for c in CODES if c.startswith(prefix)]:
            w(_code_section(code, found.get(code)))
    return "".join(out).rstrip("\n") + "\n"


def _reading(sample: Example | None) -> str:
    out = ["## Reading a diagnostic\n\n"]
    text = sample.expected if sample is not None else None
    if sample is not None and text:
        link = _anchor(f"{sample.code}: {CODES[sample.code]}")
        out.append(f"For the policy of [{sample.code}](#{link}):\n\n")
        out.append(_fence(f"$ policyctl {' '.join(sample.command())}\n{text}", "console"))
        out.append("\n")
    out.append(
        "- The first line says where (`file:line:col`, 1-based, clickable in most editors and "
        "terminals), the severity (`error` or `warning`), the code in brackets, and what is "
        "wrong.\n"
        "- Below it, the source line with a caret under the exact part at fault. Inside YAML "
        "the position is that of the expression's text in the file, so an error in the middle "
        "of a `when:` points into that line.\n"
        "- `= help:` says how to fix it, when there is something to say.\n"
        "- The last line counts errors and warnings. Every problem of every file is reported "
        "in one run, sorted by file and position.\n\n"
    )
    out.append("### Exit codes\n\n")
    out.append(_table(("code", "meaning"), [
        ("`0`", "no errors (warnings are printed but do not fail the run)"),
        ("`1`", "the policy has errors, or warnings under `--strict`"),
        ("`2`", "the tool failed or was called wrongly (a bad option, an internal error)"),
    ]))
    out.append("\n### Options\n\n")
    out.append(
        "- `--strict` fails the run (exit code `1`) on warnings too; CI runs "
        "`policyctl lint --strict policies/`.\n"
        "- `--format json` prints a JSON list with one object per diagnostic: `code`, "
        "`severity`, `message`, `help` (when there is one), and `file`, `line`, `col`, "
        "`end_line`, `end_col` (when it has a position; the end is exclusive).\n"
        "- `--format github` prints GitHub Actions workflow commands (`::error file=...,"
        "line=...::message`), which annotate the pull request's diff.\n"
        "- `--param NAME=VALUE` overrides a param of the policy for this run.\n\n"
    )
    if sample is not None and sample.main.exists():
        json_text, github_text = _machine_formats(sample)
        out.append("The same diagnostic with `--format json`:\n\n")
        out.append(_fence(json_text, "json"))
        out.append("\nand with `--format github`:\n\n")
        out.append(_fence(github_text, "text"))
        out.append("\n")
    return "".join(out)


def _machine_formats(sample: Example) -> tuple[str, str]:
    from policyctl.diagnostics import render_github, render_json
    from policyctl.lint import lint_paths

    diags, _ = lint_paths([Path(_shown(sample.main))])
    return render_json(diags), render_github(diags)


def _code_section(code: str, example: Example | None) -> str:
    out = [f"### {code}: {CODES[code]}\n\n"]
    output = example.expected if example is not None else None
    sev = sorted(severities(output, code)) if output else []
    if sev:
        out.append(f"Severity: **{' or '.join(sev)}**\n\n")
    out.append(EXPLANATIONS.get(code, "") + "\n\n")
    if example is None or output is None:
        return "".join(out)
    if not sev:
        others = sorted(set(re.findall(r"\[([YSIPTLC]\d{3})\]", output)))
        instead = f" reports {_ticks(others)} instead" if others else " fails differently"
        out.append(f"> **Known gap:** on this example `policyctl lint`{instead}; the output "
                   f"below is what it prints today.\n\n")
    out.append("Example:\n\n")
    out.append(_inputs(example))
    out.append("Output:\n\n")
    out.append(_fence(f"$ policyctl {' '.join(example.command())}\n{output}", "console"))
    out.append("\n")
    return "".join(out)


_SHOWN_COMPANIONS = 2


def _inputs(example: Example) -> str:
    out: list[str] = []
    if example.generator is not None and not _is_committed_main(example):
        gen = example.generator
        out.append(f"`{_shown(example.main)}` is too large to show or commit; "
                   f"`{_shown(gen)}` writes it:\n\n")
        out.append(_fence(gen.read_text("utf-8"), "python"))
        out.append("\n")
    else:
        out.append(_file_block(example.main))
    companions = example.companions()
    for path in companions[:_SHOWN_COMPANIONS]:
        out.append(_file_block(path))
    rest = len(companions) - _SHOWN_COMPANIONS
    if rest > 0:
        out.append(f"and {rest} more file{'s' * (rest != 1)} like the last one.\n\n")
    return "".join(out)


def _is_committed_main(example: Example) -> bool:
    gitignore = example.folder / ".gitignore"
    if not gitignore.exists():
        return True
    names = {line.strip() for line in gitignore.read_text("utf-8").splitlines()}
    return example.main.name not in names


def _file_block(path: Path) -> str:
    data = path.read_bytes()
    lang = "yaml" if path.suffix in (".yaml", ".yml") else "text"
    shown = _shown(path)
    if b"\x00" in data:
        head = data[:48]
        hexdump = "\n".join(
            f"{i:08x}: " + " ".join(f"{b:02x}" for b in head[i : i + 16])
            for i in range(0, len(head), 16)
        )
        return (f"`{shown}` (binary: its first {len(head)} bytes, in hexadecimal):\n\n"
                + _fence(hexdump + "\n…", "text") + "\n")
    try:
        text = data.decode("utf-8")
        note = ""
    except UnicodeDecodeError:
        text = data.decode("utf-8", "backslashreplace")
        note = " (bytes that are not UTF-8 are shown as `\\xNN`)"
    return f"`{shown}`{note}:\n\n" + _fence(text, lang) + "\n"


# ======================================================================================
# docs/language.md


def language_md() -> str:
    """The language reference for operators, generated from the implementation."""
    sections = [
        _lang_intro(),
        _lang_files(),
        _lang_literals(),
        _lang_operators(),
        _lang_units(),
        _lang_symbols(),
        _lang_history(),
        _lang_unavailable(),
        _lang_actions(),
        _lang_caps(),
        _lang_breakers(),
        _lang_settings(),
        _lang_fields(),
        _lang_functions(),
        _lang_reserved(),
    ]
    return "\n".join(s.rstrip("\n") + "\n" for s in sections)


def _grammar() -> str:
    return resources.files("policyctl.dsl").joinpath("grammar.lark").read_text("utf-8")


def _terminal(name: str) -> list[str]:
    """The literal alternatives of a grammar terminal (``COMP_OP: "<=" | ...``)."""
    m = re.search(rf"^{name}(?:\.\d+)?:(.*)$", _grammar(), re.MULTILINE)
    return re.findall(r'"([^"]+)"', m[1]) if m else []


def _lang_intro() -> str:
    return (
        "# The policy language\n\n"
        "<!-- Generated by `policyctl docs language > docs/language.md`: do not edit. -->\n\n"
        "A policy says when a trading bot may enter and leave positions, how large its "
        "orders are, how much it may hold, and when it must stop. It is written as a YAML "
        "file whose values embed a small typed expression language, optionally with `.rules` "
        "files written wholly in that language. `policyctl lint` checks both, including the "
        "units of every value; the [diagnostic codes](diagnostics.md) explain each problem it "
        "reports.\n\n"
        "Contents: [policy files](#policy-files), [literals and units](#literals-and-units), "
        "[operators](#operators-and-precedence), [the unit algebra](#the-unit-algebra), "
        "[per-symbol and portfolio values](#per-symbol-and-portfolio-values), "
        "[history and windows](#history-and-windows), "
        "[unavailable data](#unavailable-data-and-failing-closed), [actions](#actions), "
        "[caps](#caps), [breakers](#breakers), [settings](#settings), [fields](#fields), "
        "[functions](#functions), [reserved words](#reserved-words).\n"
    )


# ---- policy files -----------------------------------------------------------------------


def _schema_defs() -> dict[str, Any]:
    from policyctl.dsl.schema import POLICY_SCHEMA

    defs = POLICY_SCHEMA.get("$defs", {})
    return defs if isinstance(defs, dict) else {}


def _resolve(schema: Any) -> dict[str, Any]:
    defs = _schema_defs()
    for _ in range(10):
        if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
            break
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema if isinstance(schema, dict) else {}


def _value_kind(schema: Any, setting: str | None) -> str:
    """What a key takes, in words."""
    from policyctl.rules.compiler import SETTINGS

    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    if ref.endswith("/expr"):
        if setting is not None and setting in SETTINGS:
            kinds, example = SETTINGS[setting]
            return f"{' or '.join(_KIND_WORDS[k.value] for k in kinds)}, e.g. `{example}`"
        return "expression"
    if ref.endswith("/symbols"):
        return "list of symbols"
    if ref.endswith("/name"):
        return "name"
    s = _resolve(schema)
    if "enum" in s:
        return "one of " + _ticks(str(v) for v in s["enum"])
    if "oneOf" in s:
        return " or ".join(_value_kind(b, setting) for b in s["oneOf"])
    kind = s.get("type")
    words = {"string": "text", "number": "number", "integer": "whole number",
             "boolean": "`true` or `false`", "object": "mapping", "array": "list"}
    if isinstance(kind, list):
        return " or ".join(words.get(str(k), str(k)) for k in kind)
    if kind == "array":
        items = s.get("items", {})
        return "list of paths" if str(items.get("$ref", "")).endswith("/path") else "list"
    return words.get(str(kind), "value")


_KIND_WORDS = {
    "number": "number",
    "percent": "percentage",
    "duration": "duration",
    "money": "money",
    "bool": "condition",
    "string": "string",
}


def _schema_sections() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(section path, description, rows of (key, value, meaning)) in schema order."""
    from policyctl.dsl.schema import POLICY_SCHEMA

    sections: list[tuple[str, str, list[tuple[str, str, str]]]] = []

    def walk(schema: dict[str, Any], path: str, description: str) -> None:
        rows: list[tuple[str, str, str]] = []
        sections.append((path, description, rows))
        objects = [schema] + [
            _resolve(b) for b in schema.get("oneOf", []) if _resolve(b).get("properties")
        ]
        required = {r for o in objects for r in o.get("required", [])}
        later: list[tuple[dict[str, Any], str, str]] = []
        for obj in objects:
            for key, sub in obj.get("properties", {}).items():
                setting = f"fees.{key}" if path == "execution.fees" else key
                meaning = str(sub.get("description") or _resolve(sub).get("description", ""))
                if key in required:
                    meaning = "**Required.** " + meaning
                rows.append((f"`{key}`", _value_kind(sub, setting), meaning))
                resolved = _resolve(sub)
                child = f"{path}.{key}" if path else key
                if resolved.get("properties"):
                    later.append((resolved, child, str(resolved.get("description", ""))))
                extra = resolved.get("additionalProperties")
                if isinstance(extra, dict) and extra:
                    item = _resolve(extra)
                    if item.get("properties") or any(
                        _resolve(b).get("properties") for b in item.get("oneOf", [])
                    ):
                        later.append((item, f"{child}.NAME", str(item.get("description", ""))))
        for sub_schema, child, desc in later:
            walk(sub_schema, child, desc)

    walk(POLICY_SCHEMA, "", str(POLICY_SCHEMA.get("description", "")))
    return sections


def _fragment_keys() -> str:
    from policyctl.dsl import schema

    fragment = getattr(schema, "FRAGMENT_SCHEMA", None) or {
        "properties": {k: v for k, v in schema.POLICY_SCHEMA["properties"].items()
                       if k not in ("policy", "market")}
    }
    return _ticks(fragment["properties"])


def _lang_files() -> str:
    out = ["## Policy files\n\n"]
    out.append(
        "A policy is a YAML file with a top-level `policy:` key. Its keys are below, section "
        "by section (`NAME` stands for a name you choose: letters, digits and `_`). Values "
        "marked *expression* are written in the policy language; settings take a value with "
        "the unit shown. Editors that use yaml-language-server complete and document these "
        "keys from the schema `policyctl schema` prints (`docs/policy.schema.json`): start a "
        "policy with `# yaml-language-server: $schema=../docs/policy.schema.json`.\n\n"
    )
    out.append(_fence(
        "policy: trend\n"
        "market:\n"
        "  exchange: binance\n"
        "  symbols: [BTC/USDT, ETH/USDT]\n"
        "  timeframe: 5m\n"
        "params: {fast: 20, slow: 50}\n"
        "include: [common/safety.rules]\n"
        "triggers:\n"
        "  golden_cross:\n"
        "    when: not position.open and crosses_above(sma(close, fast), sma(close, slow))\n"
        "    then: buy 2% of equity stop 3% take 6%\n"
        "caps:\n"
        "  total_exposure: exposure.total <= 25%\n"
        "breakers:\n"
        "  daily_loss: {when: pnl(1d) <= -3%, then: halt for 24h}\n",
        "yaml",
    ))
    out.append("\n")
    for path, description, rows in _schema_sections():
        title = "Top level" if not path else f"`{path}`"
        out.append(f"### {title}\n\n")
        if description:
            out.append(description.rstrip() + "\n\n")
        out.append(_table(("key", "value", "meaning"), rows))
        out.append("\n")
    out.append(
        f"Included YAML files hold sections of a policy ({_fragment_keys()}), without "
        "`policy` and `market`. Include paths are relative to the including file. A rule or "
        "param name may be defined only once across all the files of a policy (L011).\n\n"
        "### `.rules` files\n\n"
        "A `.rules` file holds statements of the language, one after the other; line breaks "
        "and indentation do not matter, and `#` starts a comment:\n\n"
    )
    out.append(_fence(
        "param NAME = EXPR\n"
        "trigger NAME [on \"SYM\", \"SYM\"...]: when CONDITION then ACTION\n"
        "cap NAME: METRIC <= LIMIT [clip | block]\n"
        "breaker NAME: when CONDITION then STATE [for DURATION]\n",
        "text",
    ))
    out.append("\nFor example (`policies/common/safety.rules`):\n\n")
    out.append(_fence(
        "breaker loss_streak:\n"
        "    when stoplosses(6h) >= 3\n"
        "    then pause for 2h\n\n"
        "breaker stale_feed:\n"
        "    when any(data_age > 2 * timeframe)\n"
        "    then pause\n",
        "text",
    ))
    out.append(
        "\nA `trigger ... on \"SYM\"` runs on those symbols only, like a YAML trigger's "
        "`symbols:` list. A `.rules` file linted on its own is checked against a market made "
        "of the symbols it names.\n"
    )
    return "".join(out)


# ---- literals, operators, units ---------------------------------------------------------


def _lang_literals() -> str:
    from policyctl.dsl.parser import DURATION_SECONDS

    units = ", ".join(f"`{u}`" for u in DURATION_SECONDS)
    rows = [
        ("number", "`20`, `1.5`, `.5`, `2e-3`", "a plain number"),
        ("percentage", "`3%`, `0.5%`", "a fraction: `3%` is 0.03"),
        ("basis points", "`30bps`", "a percentage: `30bps` is 0.3%, i.e. 0.003"),
        ("duration", "`90s`, `5m`, `1h`, `7d`, `2w`", f"a span of time; units {units}"),
        ("money", "`1000 USDT`, `0.5 BTC`", "an amount in a currency: a number, a space, and "
         "an uppercase currency code of 2 to 10 letters and digits, starting with a letter"),
        ("condition", "`true`, `false`", "a boolean"),
        ("string", "`\"BTC/USDT\"`, `\"majors\"`", "only after `of`, to name a symbol or theme"),
    ]
    return (
        "## Literals and units\n\n"
        "Every value has a type, and numeric types carry their unit:\n\n"
        + _table(("type", "written", "meaning"), rows)
        + "\nThe unit is written with the number, without a space (`3%`, `5m`), except money "
        "(`1000 USDT`). A bare `0.03` is a number, not a percentage, and `5` is a number of "
        "bars where a window is expected, not five minutes. Money carries its currency: "
        "prices (`close`, `position.entry`) are in the quote currency of their symbol, and "
        "account values (`equity`, `cash`) in the policy's quote currency (`market.quote`, or "
        "the common quote of its symbols).\n\n"
        "Names are letters, digits and `_`, and may be dotted (`position.open`). Line breaks "
        "and blanks between tokens do not matter; in YAML, write a long expression as a "
        "folded block (`when: >-` followed by indented lines).\n"
    )


def _lang_operators() -> str:
    comp = _ticks(_terminal("COMP_OP"))
    add = _ticks(_terminal("ADD_OP"))
    mul = _ticks(_terminal("MUL_OP"))
    rows = [
        ("1 (lowest)", "`or`", "either condition; left to right"),
        ("2", "`and`", "both conditions; left to right"),
        ("3", "`not`", "negates a condition"),
        ("4", comp, "compare two values of like units; cannot be chained"),
        ("5", add, "add, subtract; left to right"),
        ("6", mul, "multiply, divide; left to right"),
        ("7", add, "sign (`-3%`)"),
        ("8", "`x[n]`, `x of \"SYM\"`", "history, and the value of a named symbol or theme"),
        ("9 (highest)", "literals, names, `f(...)`, `( )`", ""),
    ]
    return (
        "## Operators and precedence\n\n"
        "From the loosest binding to the tightest:\n\n"
        + _table(("level", "operators", "meaning"), rows)
        + "\nSo `not a and b` is `(not a) and b`, and `close > sma(close, 20) * 1.02 and "
        "rsi(close, 14) < 70` needs no parentheses. Comparisons do not chain: "
        "`40 < rsi(close, 14) < 60` is a syntax error (P001); write "
        "`40 < rsi(close, 14) and rsi(close, 14) < 60`. `and`, `or` and `not` take "
        "conditions only: `not position.size` is an error (T009), `not position.open` is "
        "what you mean.\n"
    )


def _type_label(t: Any) -> str:
    if getattr(t, "ratio", False):
        return "ratio"
    return _KIND_WORDS.get(t.kind.value, t.kind.value)


def _lang_units() -> str:
    from policyctl.rules import types as ty

    operands: list[tuple[str, Any]] = [
        ("number", ty.NUMBER), ("percentage", ty.PERCENT), ("duration", ty.DURATION),
        ("money", ty.money(None)),
    ]
    ratio = getattr(ty, "RATIO", None)
    if ratio is not None:
        operands.append(("ratio", ratio))

    def arith_cell(op: str, a: Any, b: Any) -> str:
        try:
            return _type_label(ty.arith(op, a, b))
        except ty.UnitError:
            return "—"

    def cmp_cell(a: Any, b: Any) -> str:
        try:
            ty.comparable(a, b)
        except ty.UnitError:
            return "—"
        return "yes"

    out = [
        "## The unit algebra\n\n"
        "The checker computes the unit of every operation and refuses the ones that make no "
        "sense (T004). A percentage is a dimensionless fraction, so it mixes with numbers in "
        "arithmetic (`close * (1 + 2%)` is money), but comparisons must compare like with "
        "like: `rsi(close, 14) < 3%` is almost certainly a mistake.\n\n"
        "The unit of `a OP b` (rows: `a`, columns: `b`; — means the operation is an error):\n\n"
    ]
    names = [n for n, _ in operands]
    for op in ("+", "-", "*", "/"):
        out.append(f"`a {op} b`:\n\n")
        out.append(_table((f"`{op}`", *names),
                          [(n, *(arith_cell(op, a, b) for _, b in operands))
                           for n, a in operands]))
        out.append("\n")
    out.append("Which units compare with which (`<`, `<=`, `>`, `>=`, `==`, `!=`):\n\n")
    out.append(_table(("compare", *names),
                      [(n, *(cmp_cell(a, b) for _, b in operands)) for n, a in operands]))
    out.append("\n")
    if ratio is not None:
        out.append(
            "A *ratio* is a number obtained by dividing like quantities (`atr(14) / close`, "
            "`close / sma(close, 20)`); being dimensionless, it compares with numbers and "
            "percentages alike: `atr(14) / close < 2%`.\n\n"
        )
    out.append(
        "Money of two different currencies never combines or compares (T005 for an order "
        "size). The literal `0` compares with anything, and adds to anything: `position.pnl "
        "> 0`, `change(close, 1h) < 0`. Conditions compare only with `==` and `!=`.\n"
    )
    return "".join(out)


# ---- per-symbol values, history, unavailable data ----------------------------------------


def _lang_symbols() -> str:
    return (
        "## Per-symbol and portfolio values\n\n"
        "Some values belong to a symbol (`close`, `position.open`, `exposure.symbol`: "
        "*per-symbol*), others to the whole account (`equity`, `drawdown`, `pnl(1d)`: "
        "*portfolio*); the [fields](#fields) table says which. Where a rule is evaluated "
        "decides which values it may use without saying which symbol:\n\n"
        + _table(("where", "evaluated", "per-symbol values"), [
            ("trigger `when`, action", "for each symbol (of `market.symbols`, or its `symbols:`)",
             "refer to that symbol"),
            ("cap", "per symbol if its quantity is per-symbol (`exposure.symbol`), else once",
             "allowed in a per-symbol cap"),
            ("breaker", "once for the portfolio", "need `of` or `any`/`all`"),
            ("param, setting", "once, and must be constant", "not allowed"),
        ])
        + "\n`x of \"SYM\"` evaluates `x` for the named symbol, wherever it is written: "
        "`change(close of \"BTC/USDT\", 1h) <= -8%` in a breaker, or in a trigger on ETH to "
        "follow BTC. `exposure.theme of \"alts\"` names a theme of `market.themes`; without "
        "`of`, `exposure.theme` is the theme of the symbol being evaluated (0 for a symbol in "
        "no theme; a symbol the rule runs on that is in two themes is an error, T011).\n\n"
        "`any(condition)` is true when the per-symbol condition holds for at least one symbol, "
        "`all(condition)` when it holds for every symbol: "
        "`any(data_age > 2 * timeframe)` in a breaker.\n"
    )


def _lang_history() -> str:
    return (
        "## History and windows\n\n"
        "Market series (`open`, `high`, `low`, `close`, `volume`, and anything computed from "
        "them alone, such as `sma(close, 20)` or `high - low`) have history: `close[1]` is the "
        "close one bar ago, `highest(high, 20)[1]` the 20-bar high as of the previous bar, and "
        "`x[0]` is `x`. The offset is a whole number of bars, or a duration that is a "
        "multiple of the timeframe (`close[1h]` on 5-minute bars is `close[12]`). Account "
        "state (`equity`, `position.pnl`) has no history (T006).\n\n"
        "Indicator windows are written the same way: `sma(close, 20)` averages 20 bars, "
        "`sma(close, 1d)` one day of bars; a duration that is not a whole number of bars is an "
        "error (T008). Windows are constants from 1 to 1000000 bars. Account functions "
        "(`pnl`, `trades`, `stoplosses`, ...) take a duration only: `trades(1h)`. The name "
        "`timeframe` is the policy's bar duration (`2 * timeframe`).\n"
    )


def _kleene(v: float) -> str:
    return "unavailable" if v != v else ("true" if v == 1.0 else "false")


def _lang_unavailable() -> str:
    from policyctl.rules import ops
    from policyctl.rules.numeric import REL_TOL

    values = [1.0, 0.0, float("nan")]
    rows = [(_kleene(a), _kleene(b), _kleene(ops.and_(a, b)), _kleene(ops.or_(a, b)))
            for a in values for b in values]
    nots = ", ".join(f"`not {_kleene(a)}` is {_kleene(ops.not_(a))}" for a in values)
    return (
        "## Unavailable data and failing closed\n\n"
        "A value can be *unavailable*: a missing or stale candle, an indicator still warming "
        "up (`sma(close, 50)` on the first 49 bars), a division by zero, an account value the "
        "engine does not have. Unavailable propagates through arithmetic and comparisons "
        "(`close > unavailable` is unavailable), and the logical operators follow "
        "three-valued logic, so a definite answer wins when there is one:\n\n"
        + _table(("a", "b", "a and b", "a or b"), rows)
        + f"\nand {nots}.\n\n"
        "The engine *fails closed* on an unavailable result: a trigger fires only on a "
        "definite true, and a breaker, cap or guard that cannot be evaluated blocks trading "
        "as if it were breached.\n\n"
        "### Tolerant comparisons\n\n"
        f"Comparisons tolerate floating-point noise: two values within {REL_TOL:g} of each "
        "other, relative to the larger, compare equal, so `a > b` needs `a` to exceed `b` by "
        "more than that. Two moving averages that are equal in decimal arithmetic therefore "
        "never cross because of rounding. The tolerance is relative only: `0` equals only "
        "`0`, and any positive value is `> 0`.\n"
    )


# ---- actions, caps, breakers, settings --------------------------------------------------


def _lang_actions() -> str:
    return (
        "## Actions\n\n"
        "A trigger's `then` is one of:\n\n"
        + _table(("action", "meaning"), [
            ("`buy SIZE [stop X] [take Y]`", "open or add to a long position; with a "
             "stop-loss and a take-profit"),
            ("`sell SIZE`", "reduce the position by SIZE"),
            ("`close`", "close the whole position on the symbol"),
        ])
        + "\nSIZE is one of:\n\n"
        + _table(("size", "meaning"), [
            ("`2% of equity`, `95% of cash`", "a share of equity or of free cash"),
            ("`500 USDT`", "an amount of money, in the policy's quote currency (T005 "
             "otherwise)"),
            ("`risk 1% of equity`", "the quantity that loses 1% of equity if the price moves "
             "by the stop distance (needs `stop`, T012; entries only: a sell has no stop)"),
            ("`risk 1% of equity per 2 * atr(14)`", "the same, with the price distance given "
             "after `per` (money)"),
        ])
        + "\nThe amount may be any expression of the right unit, such as a param (`buy slot "
        "of equity stop stop_loss`) or `min(2%, 0.5 * drawdown) of equity`. A constant size "
        "must be positive, and a share at most `100%` of its base (S004: a spot account does "
        "not borrow); a size computed at run time that is not positive leaves the entry "
        "unsized (denied `unsized`).\n\n"
        "`stop X` and `take Y` are distances from the entry price: a percentage (`stop 3%` "
        "closes the position 3% below the entry, `take 6%` 6% above), or a price distance in "
        "money (`stop 2 * atr(14)`). Both are positive; a stop beyond the take-profit is an "
        "error (L003), an implausible distance a warning (L013). Each may be given once "
        "(P007).\n"
    )


def _lang_caps() -> str:
    from policyctl.rules import catalogue as cat
    from policyctl.rules.compiler import COUNT_CAPS

    metrics = [*sorted(cat.CAPPABLE_FIELDS), *(f"{f}(window)" for f in
                                               sorted(cat.CAPPABLE_FUNCTIONS))]
    counts = _ticks(sorted(COUNT_CAPS))
    return (
        "## Caps\n\n"
        "A cap puts an upper limit on a quantity the engine can hold down before it sends an "
        "order: `QUANTITY <= LIMIT` (or `<`, or the limit on the left: `25% >= "
        "exposure.total`). The quantity is one of "
        f"{_ticks(metrics)}, optionally with `of` (`exposure.theme of \"alts\" <= 15%`). "
        "Anything else is an error (T013): a loss limit is a breaker.\n\n"
        "When an order would take the quantity over the limit, the cap either *clips* the "
        "order to what still fits, or *blocks* it. Caps on counts "
        f"({counts}) can only block and block by default; the others clip by default. The "
        "count caps are checked first, before the order is sized (an order one of them refuses "
        "is refused whatever its size), then the sized order meets the budgets and the other "
        "caps, each group in policy order with a strategy's own caps before the global ones. "
        "Say it "
        "after the expression (`exposure.total <= 25% block`), or write the cap as a mapping:\n\n"
        + _fence(
            "caps:\n"
            "  total_exposure: exposure.total <= 25%\n"
            "  per_asset:\n"
            "    limit: exposure.symbol <= 10%\n"
            "    on_breach: block\n"
            "    strategy: breakout      # only this strategy's orders\n",
            "yaml",
        )
        + "\nA cap on a per-symbol quantity (`exposure.symbol`, `position.value`) holds for "
        "every symbol; its limit may depend on the symbol. Themes may also carry a "
        "`max_exposure` in `market.themes`. The linter warns about caps that can never bind "
        "(L004, L005, L014) or contradict each other (L001, L002).\n"
    )


_BREAKER_STATES = {
    "halt": "cancel open orders and send no new ones",
    "flatten": "close every position",
    "reduce_only": "accept only orders that reduce positions",
    "pause": "open no new positions",
    "alert": "only report that the breaker tripped",
}


def _lang_breakers() -> str:
    kinds = _terminal("BREAKER_KIND")
    rows = [(f"`{k}`", _BREAKER_STATES.get(k, "")) for k in kinds]
    return (
        "## Breakers\n\n"
        "A breaker watches the portfolio and moves trading into a safer state when its "
        "condition becomes true: `when CONDITION then STATE [for DURATION]`.\n\n"
        + _table(("state", "meaning"), rows)
        + "\nWhen several breakers are active, the strictest state wins: `halt`, then "
        "`flatten`, `reduce_only`, `pause`. `for DURATION` (a positive constant duration, "
        "`halt for 24h`) says how long the state lasts once the breaker trips. A breaker is "
        "evaluated once for the whole portfolio, so per-symbol values need `of` or "
        "`any`/`all` (T007). The linter warns when the duration outlasts the window the "
        "condition looks at (L008).\n"
    )


def _lang_settings() -> str:
    from policyctl.rules.compiler import SETTINGS

    rows = []
    for key, (kinds, example) in SETTINGS.items():
        rows.append((f"`{key}`", " or ".join(_KIND_WORDS[k.value] for k in kinds),
                     f"`{example}`"))
    return (
        "## Settings\n\n"
        "`guards`, `execution` and `cooldowns` hold settings rather than rules; their keys "
        "are described under [policy files](#policy-files). Settings written with a unit are "
        "checked like expressions and must be constants (T016) in the right unit (T003), "
        "money in the policy's quote currency (T005):\n\n"
        + _table(("setting", "unit", "example"), rows)
        + "\nThe linter checks that they are plausible together: fees and slippage (L006), "
        "`maker_wait < pending_ttl < stale_after` (L007), `dust` below `min_trade` (L009).\n"
    )


# ---- catalogue --------------------------------------------------------------------------


def _type_words(t: Any) -> str:
    from policyctl.rules.types import Kind

    if t.kind is Kind.MONEY:
        return "money"
    return _KIND_WORDS.get(t.kind.value, t.kind.value)


def _lang_fields() -> str:
    from policyctl.rules import catalogue as cat

    rows = []
    for f in cat.FIELDS.values():
        scope = "per-symbol" if f.scope is cat.Scope.SYMBOL else "portfolio"
        if f.of:
            scope += f" (`of` a {f.of})"
        rows.append((f"`{f.name}`", _type_words(f.type), scope, f.source.value, f.doc))
    const_rows = [(f"`{n}`", _type_words(t), doc) for n, (t, doc) in cat.CONSTANTS.items()]
    return (
        "## Fields\n\n"
        "The values a policy can read. *Market* fields come from candles and have history; "
        "*state* fields come from the account and the engine at the current tick. Money "
        "fields are in the quote currency.\n\n"
        + _table(("name", "type", "scope", "source", "meaning"), rows)
        + "\nConstants:\n\n"
        + _table(("name", "type", "meaning"), const_rows)
    )


_ARG_KINDS = {
    "series": "a market series",
    "window": "bars or a duration",
    "duration": "a duration",
    "value": "a number with any unit",
    "bool": "a per-symbol condition",
}

_CATEGORIES = (
    ("indicator", "Indicators", "Computed over market series, per symbol; they have history."),
    ("math", "Math", "On any numeric values; arguments share one unit."),
    ("window", "Account windows", "Account activity over a trailing duration, portfolio-wide."),
    ("aggregate", "Across symbols", "Turn a per-symbol condition into a portfolio-wide one."),
)


def _lang_functions() -> str:
    from policyctl.rules import catalogue as cat

    out = ["## Functions\n\n"]
    for category, title, intro in _CATEGORIES:
        specs = [f for f in cat.FUNCTIONS.values() if f.category == category]
        if not specs:
            continue
        rows = []
        for f in specs:
            args = ", ".join(a.name for a in f.args) + (", ..." if f.variadic else "")
            if isinstance(f.result, str):
                result = {"arg0": f"unit of `{f.args[0].name}`",
                          "common": "unit of the arguments"}.get(f.result, f.result)
            else:
                result = _type_words(f.result)
            kinds = "; ".join(f"`{a.name}`: {_ARG_KINDS.get(a.kind, a.kind)}" for a in f.args)
            rows.append((f"`{f.name}({args})`", result, f"{f.doc} ({kinds})", f"`{f.example}`"))
        out.append(f"### {title}\n\n{intro}\n\n")
        out.append(_table(("function", "result", "meaning", "example"), rows))
        out.append("\n")
    return "".join(out)


def _lang_reserved() -> str:
    from policyctl.rules import catalogue as cat

    return (
        "## Reserved words\n\n"
        "These words belong to the language and cannot name a param or a rule (T015):\n\n"
        + _ticks(sorted(cat.KEYWORDS)) + ".\n\n"
        "A param may also take the name of a field or function, but that draws a warning "
        "(L012).\n"
    )


__all__ = [
    "EXAMPLES",
    "EXPLANATIONS",
    "GROUPS",
    "Example",
    "diagnostics_md",
    "language_md",
    "load_examples",
    "severities",
]
