"""The compliance suite: ``cases/*.json`` as data, in jmespath's style.

Each file is a list of groups ``{"description", "given", "cases"}``; each case
has ``expression`` (raw expression) or ``template`` (a string with ``${{ }}``),
and either ``result`` or ``error`` (the name of an ExpressionError subclass).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import casefold.expressions as ex

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.json")):
        for g, group in enumerate(json.loads(path.read_text())):
            for i, case in enumerate(group["cases"]):
                source = case.get("expression", case.get("template"))
                params.append(
                    pytest.param(group["given"], case, id=f"{path.stem}[{g}.{i}] {source}")
                )
    return params


CASES = _load()


def test_suite_is_not_trivial():
    assert len(CASES) >= 150


@pytest.mark.parametrize(("given", "case"), CASES)
def test_case(given: dict[str, Any], case: dict[str, Any]) -> None:
    def run() -> Any:
        if "template" in case:
            return ex.compile_template(case["template"]).render(given)
        return ex.compile_expression(case["expression"]).evaluate(given)

    if "error" in case:
        error_type = getattr(ex, case["error"])
        assert issubclass(error_type, ex.ExpressionError)
        with pytest.raises(error_type):
            run()
    else:
        result = run()
        assert result == case["result"]
        # bool/int confusion matters in a policy language: True must not pass for 1.
        assert type(result) is type(case["result"]) or (
            isinstance(result, int | float)
            and isinstance(case["result"], int | float)
            and not isinstance(result, bool)
        )
