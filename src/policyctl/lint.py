"""``policyctl lint``: find the policies under the given paths and check them all.

A YAML file with a top-level ``policy:`` key is a policy: it is loaded with its includes,
checked, compiled and linted. A ``.rules`` file that no linted policy includes is checked
on its own, against a market made of the symbols it names. YAML files without ``policy:``
are fragments, checked where they are included; policy test files (``*.test.yaml``) are
left to ``policyctl test``.
"""

from __future__ import annotations

import re
from pathlib import Path

from policyctl.diagnostics import Diagnostics
from policyctl.dsl import ast
from policyctl.dsl.loader import Loader
from policyctl.dsl.model import Market
from policyctl.rules.compiler import compile_policy

_POLICY_KEY = re.compile(rb"^policy\s*:", re.MULTILINE)
POLICY_SUFFIXES = (".yaml", ".yml", ".rules")


def is_test_file(path: Path) -> bool:
    return path.name.endswith((".test.yaml", ".test.yml"))


def discover(paths: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """Split paths into (policy YAML files, .rules files, named files that are not policies)."""
    yamls: list[Path] = []
    rules: list[Path] = []
    explicit_other: list[Path] = []
    for p in paths:
        try:
            is_dir = p.is_dir()
        except OSError:  # e.g. a name too long: the loader reports it as unreadable
            is_dir = False
        if is_dir:
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix in POLICY_SUFFIXES and not is_test_file(f):
                    (rules if f.suffix == ".rules" else yamls).append(f)
        elif p.suffix == ".rules":
            rules.append(p)
        else:
            explicit_other.append(p)
    return yamls, rules, explicit_other


def _is_policy(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(1_000_000)
    except OSError:
        return True  # let the loader report it
    return bool(_POLICY_KEY.search(head))


def lint_file(path: Path, diags: Diagnostics, params: dict[str, str]) -> list[str]:
    """Load, check and lint one policy; return the files it read."""
    loader = Loader(diags, params)
    policy = loader.load(path)
    if policy is None:
        return [str(path)]
    if path.suffix == ".rules":
        _standalone_market(policy)
    compile_policy(policy, diags)
    return policy.files


def _standalone_market(policy: object) -> None:
    """A ``.rules`` file alone has no market: use the symbols its rules name."""
    from policyctl.dsl.model import Policy

    assert isinstance(policy, Policy)
    names: set[str] = set()
    for stmt in [*policy.triggers, *policy.caps, *policy.breakers]:
        names.update(getattr(stmt, "symbols", ()))
        for e in (getattr(stmt, "when", None), getattr(stmt, "expr", None)):
            if e is not None:
                names.update(n.target for n in ast.walk(e) if isinstance(n, ast.Of))
    policy.market = Market(symbols=tuple(sorted(names)))


def lint_paths(paths: list[Path], params: dict[str, str] | None = None) -> tuple[Diagnostics, list[str]]:
    params = params or {}
    diags = Diagnostics()
    yamls, rules, other = discover(paths)
    seen: set[Path] = set()
    files: list[str] = []
    for f in other:
        files += lint_file(f, diags, params)
    for f in yamls:
        if _is_policy(f):
            read = lint_file(f, diags, params)
            files += read
            seen.update(Path(r).resolve() for r in read)
    for f in rules:
        if f.resolve() not in seen:
            files += lint_file(f, diags, params)
    return diags, sorted(set(files))
