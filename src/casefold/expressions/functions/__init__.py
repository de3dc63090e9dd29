"""The ``FN.*`` function library. Importing this package registers every function.

``FUNCTIONS`` maps a name to its :class:`FunctionInfo` (arity, parameter names,
types, category, determinism, one-line doc) so the playbook validator can list
and check calls without running anything.
"""

from __future__ import annotations

from . import core, network, text, time  # noqa: F401  (registration side effects)
from .registry import FUNCTIONS, FunctionInfo

__all__ = ["FUNCTIONS", "FunctionInfo"]
