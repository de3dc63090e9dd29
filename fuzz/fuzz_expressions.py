"""Coverage-guided fuzzing of the expression language: lexer, parser, compiler and evaluator.

The first byte picks the entry point (expression, template, lambda, `for` iterator); the rest is
the source text. Compiling raises only ParseError; evaluating the result on a small fixed context
under a small budget raises only ExpressionError. Run with -timeout so a runaway evaluation the
budget failed to stop is reported as a hang.
"""

from __future__ import annotations

import atheris
from _harness import run

with atheris.instrument_imports():
    from casefold.expressions import (
        Budget,
        Expression,
        ExpressionError,
        Lambda,
        ParseError,
        Template,
        compile_expression,
        compile_iterator,
        compile_lambda,
        compile_template,
    )

BUDGET = Budget(max_steps=5_000, max_output_bytes=50_000, max_depth=32, regex_timeout=0.01)
CONTEXT = {
    "TRIGGER": {"rule": {"level": 12, "groups": ["sshd", "authentication_failed"]}, "n": None},
    "ACTIONS": {"a": {"result": [1, "2", {"k": [3.5, True]}]}, "b": {"result": "x" * 100}},
    "VARS": {"v": {"key": "value"}},
    "ENV": {},
    "SECRETS": {"s": {"KEY": "secret"}},
    "var": {"x": [{"sev": 3}, {"sev": 9}]},
}


def _compile(kind: int, text: str) -> Expression | Template | Lambda:
    if kind == 0:
        return compile_expression(text)
    if kind == 1:
        return compile_template(text)
    if kind == 2:
        return compile_lambda("lambda x, y: " + text)
    return compile_iterator("for var.i in " + text)[1]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = fdp.ConsumeIntInRange(0, 3)
    text = fdp.ConsumeUnicode(fdp.remaining_bytes())
    try:
        compiled = _compile(kind, text)
    except ParseError as exc:
        assert str(exc) and exc.line >= 1 and exc.column >= 1
        return
    try:
        if isinstance(compiled, Lambda):
            compiled.map([[1, 2], [3, 4], "ab", 5], budget=BUDGET, context=CONTEXT)
            compiled(CONTEXT["var"], 5, budget=BUDGET, context=CONTEXT)
        elif isinstance(compiled, Template):
            compiled.render(CONTEXT, budget=BUDGET)
        else:
            compiled.evaluate(CONTEXT, budget=BUDGET)
    except ExpressionError as exc:
        assert str(exc)


if __name__ == "__main__":
    run(test_one_input)
