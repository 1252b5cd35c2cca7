"""``policyctl test``: unit tests for policies, written beside them as ``NAME.test.yaml``.

A test file names its policy and holds *cases*. A case describes a short market history
(bars per symbol), the engine's state before it and a few extras of the last tick; the
runner feeds the bars to the real :class:`~policyctl.runtime.engine.Engine`, one tick per
bar, and compares the decision of the last tick (the *tested tick*) with the case's
expectations. The format is documented for operators in ``docs/testing.md``.

* :mod:`.spec` reads and validates test files (problems are diagnostics with positions);
* :mod:`.runner` builds snapshots and state, runs the engine, and checks expectations;
* :mod:`.report` renders results (human, JSON) and the coverage of each policy.
"""

from __future__ import annotations

from policyctl.testing.report import render_human, render_json
from policyctl.testing.runner import RunResult, run_paths

__all__ = ["RunResult", "render_human", "render_json", "run_paths"]
