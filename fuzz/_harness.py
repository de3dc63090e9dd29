"""What the atheris harnesses share: where the repository is, and how a harness is started.

Imported by each harness before atheris instruments the code under test, so nothing here is
instrumented.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
# The property checks live with the Hypothesis fuzz tests (tests/fuzz/checks.py).
sys.path.insert(0, str(ROOT / "tests"))


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Hand the command line (libFuzzer flags, corpus directories) to atheris and fuzz."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
