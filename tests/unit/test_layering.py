"""Imports flow one way along the path of an alert; this test fails on a forbidden edge."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "casefold"

# package -> packages it must never import (directly).
FORBIDDEN: dict[str, set[str]] = {
    "expressions": {"*"},  # standalone language: imports nothing else from casefold
    "sources": {"store", "intake", "cases", "folding", "api", "app", "cli", "runtime"},
    "store": {
        "sources",
        "intake",
        "cases",
        "folding",
        "api",
        "app",
        "cli",
        "runtime",
        "access",
        "web",
    },
    "cases": {"intake", "folding", "api", "app", "cli", "runtime"},
    "folding": {"intake", "api", "app", "cli", "runtime"},
    "intake": {"folding", "cases", "api", "app", "cli", "runtime"},
    "api": {"cli"},
    "connectors": {
        "store",
        "intake",
        "cases",
        "folding",
        "playbooks",
        "actions",
        "api",
        "app",
        "cli",
        "runtime",
        "enrichment",
    },
    "enrichment": {"intake", "folding", "playbooks", "actions", "api", "app", "cli", "runtime"},
    "actions": {"intake", "folding", "playbooks", "api", "app", "cli", "runtime"},
    "playbooks": {"intake", "api", "app", "cli", "runtime"},
    "response": {"intake", "folding", "playbooks", "api", "app", "cli", "runtime"},
    "outbox": {"intake", "folding", "playbooks", "api", "app", "cli", "runtime", "enrichment"},
    # Pages read through the store, cases, outbox and playbook-history modules; they never reach
    # into the API's internals.
    "web": {"intake", "folding", "api", "cli", "runtime"},
    "wazuh_side": {"api", "app", "cli", "runtime", "intake", "folding", "cases", "store"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "casefold" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_no_forbidden_imports():
    problems = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        banned = FORBIDDEN.get(top)
        if not banned:
            continue
        for target in _imports(path):
            if target == top or target == "__init__":
                continue
            if "*" in banned or target in banned:
                problems.append(f"{rel} imports casefold.{target}")
    assert not problems, "\n".join(problems)


def test_no_eval_or_exec_in_the_package():
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile"}, f"{path}: {node.func.id}"
