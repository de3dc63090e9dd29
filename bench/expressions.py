"""Expression-engine throughput on one core: compile once, evaluate many times.

    .venv/bin/python bench/expressions.py [--seconds 0.5]

Measures evaluations per second for:

* the **simple mix** (the hard target, >= 500,000/s): a comparison against a
  literal, ``'crowdsec' in ACTIONS.…``, a plain path and a short ternary;
* the article's severity ternary chain and its ``FN.lookup`` priority expression;
* a string template render and a 10-item lambda map.

The process is pinned to one CPU where the OS allows it. Each workload runs in
a tight loop for a fixed time, best of five rounds. Results are printed as a
table and written to ``bench/results/expressions.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from casefold.expressions import compile_expression, compile_lambda, compile_template

TARGET_SIMPLE = 500_000
RESULTS = Path(__file__).parent / "results" / "expressions.json"

SEVERITY = """${{
    "fatal" if ACTIONS.stock_level.result == 16
    else "critical" if ACTIONS.stock_level.result == 15
    else "high" if ACTIONS.stock_level.result >= 12
    else "medium" if ACTIONS.stock_level.result >= 4
    else "low"
  }}"""
PRIORITY = (
    "FN.lookup({ 'malicious': 'critical', 'suspicious': 'high', 'known': 'medium', "
    "'unknown': 'low' }, ACTIONS.stock_reputation.result) if ACTIONS.stock_reputation.result "
    "in ['malicious', 'suspicious', 'known', 'unknown'] else 'unknown'"
)
SIMPLE = [
    "ACTIONS.stock_level.result >= 12",
    "'crowdsec' in ACTIONS.stock_groups.result",
    "TRIGGER.data.rule.level",
    "'high' if TRIGGER.data.rule.level >= 12 else 'low'",
]


def context() -> dict[str, Any]:
    return {
        "TRIGGER": {
            "data": {
                "rule": {"level": 12, "groups": ["crowdsec", "attack"], "description": "x"},
                "agent": {"id": "001", "name": "web-01"},
            }
        },
        "ACTIONS": {
            "stock_level": {"result": 12},
            "stock_groups": {"result": ["sshd", "crowdsec"]},
            "stock_reputation": {"result": "suspicious"},
        },
        "SECRETS": {},
        "VARS": {},
        "ENV": {},
    }


def measure(fn: Callable[[], Any], per_call: int, seconds: float) -> float:
    """Best-of-5 rate (operations/s) of ``fn``; each call performs ``per_call`` operations."""
    best = 0.0
    for _ in range(5):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(200):
                fn()
            n += 200
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n * per_call / (now - start))
    return best


def workloads() -> list[tuple[str, Callable[[], Any], int]]:
    ctx = context()
    simple = [compile_expression(s).evaluate for s in SIMPLE]
    a, b, c, d = simple

    def simple_mix() -> None:
        a(ctx)
        b(ctx)
        c(ctx)
        d(ctx)

    severity = compile_template(SEVERITY).render
    priority = compile_expression(PRIORITY).evaluate
    note = compile_template(
        "Agent ${{ TRIGGER.data.agent.name }} raised level ${{ TRIGGER.data.rule.level }} "
        "(${{ TRIGGER.data.rule.groups }})"
    ).render
    items = [{"key": f"k{i}", "value": f"v{i}"} for i in range(10)]
    lam = compile_lambda("lambda m: m['key'] + ': ' + m['value']")

    out: list[tuple[str, Callable[[], Any], int]] = [
        ("simple mix (4 expressions)", simple_mix, 4),
    ]
    out += [(f"  {s}", (lambda f=f: f(ctx)), 1) for s, f in zip(SIMPLE, simple, strict=True)]
    out += [
        ("severity ternary chain (template)", lambda: severity(ctx), 1),
        ("FN.lookup priority", lambda: priority(ctx), 1),
        ("string template render", lambda: note(ctx), 1),
        ("lambda map over 10 items", lambda: lam.map(items), 1),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="time per round (5 rounds)")
    parser.add_argument("--quick", action="store_true", help="shorter rounds (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 0.1
    pinned = False
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
            pinned = True
        except OSError:
            pass

    rows = []
    for name, fn, per_call in workloads():
        rate = measure(fn, per_call, args.seconds)
        rows.append({"workload": name.strip(), "evaluations_per_second": round(rate)})
        print(f"{name:<60} {rate:>14,.0f} /s", flush=True)

    simple_rate = rows[0]["evaluations_per_second"]
    passed = simple_rate >= TARGET_SIMPLE
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "target_simple_per_second": TARGET_SIMPLE,
                "simple_per_second": simple_rate,
                "pass": passed,
                "pinned_to_one_cpu": pinned,
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "rows": rows,
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{verdict}: simple mix {simple_rate:,.0f}/s (target {TARGET_SIMPLE:,}/s on one core)")
    print(f"results written to {RESULTS}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
