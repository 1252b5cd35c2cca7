"""Builds the package; compiles the live runtime's incremental indicators with mypyc.

``policyctl.rules.streaming`` is plain, fully typed Python: mypyc turns it into a C extension
that runs the same arithmetic with the indicators' state unboxed, about twice as fast per
update. The build stamps the source it compiled (``_streaming_stamp.py``, its SHA-256), and
``policyctl.rules.indicators`` runs the source instead of an extension built from other text
(an edited checkout, say): a stale build can cost speed, never correctness.

``POLICYCTL_PURE_PYTHON=1`` installs without compiling (and removes an earlier build from the
source tree): the source then runs as it is, with the same results. A machine without a C
compiler needs it.
"""

import hashlib
import os
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
SOURCE = "src/policyctl/rules/streaming.py"
STAMP = HERE / "src/policyctl/rules/_streaming_stamp.py"

ext_modules = []
if os.environ.get("POLICYCTL_PURE_PYTHON", "") in ("1", "yes", "true"):
    for built in (HERE / "src/policyctl/rules").glob("streaming*.so"):
        built.unlink()
    STAMP.unlink(missing_ok=True)
else:
    from mypyc.build import mypycify

    digest = hashlib.sha256((HERE / SOURCE).read_bytes()).hexdigest()
    STAMP.write_text(f'"""Written by setup.py: the source the extension was compiled from."""\n\n'
                     f'SOURCE_SHA256 = "{digest}"\n', encoding="utf-8")
    ext_modules = mypycify([SOURCE], opt_level="3")

setup(ext_modules=ext_modules)
