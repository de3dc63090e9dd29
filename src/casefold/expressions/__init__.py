"""Casefold's expression language: Tracecat-compatible ``${{ … }}``, compiled and bounded.

Compile once, evaluate many times::

    from casefold.expressions import compile_expression, compile_template, Budget

    expr = compile_expression("ACTIONS.stock_level.result >= 12")
    expr.evaluate({"ACTIONS": {"stock_level": {"result": 15}}})   # True
    compile_template("Level ${{ TRIGGER.rule.level }}").render(ctx)

The package is pure (standard library, ``regex``, ``orjson``, ``pyyaml``) and
imports nothing else from Casefold. Pipeline: ``lexer`` → ``parser`` (Pratt, bounded
nesting) → ``compiler`` (AST → closures; no eval/exec) with ``paths`` (our JSONPath
subset), ``operators`` and ``functions`` (the ``FN.*`` registry); ``templates`` finds
and renders ``${{ }}``; ``lambdas`` compiles ``lambda x: …`` in the same language;
``budget`` bounds every evaluation. Differences from Tracecat are listed in docs/expressions.md.
"""

from __future__ import annotations

from .budget import DEFAULT_BUDGET, Budget
from .compiler import Expression, References, compile_expression, compile_iterator
from .errors import (
    ArityError,
    BudgetExceededError,
    EvaluationError,
    ExpressionError,
    ParseError,
    UnknownFunctionError,
)
from .functions import FUNCTIONS, FunctionInfo
from .lambdas import Lambda, compile_lambda
from .parser import CONTEXT_ROOTS
from .templates import CompiledValue, Template, compile_template, compile_value

__all__ = [
    "CONTEXT_ROOTS",
    "DEFAULT_BUDGET",
    "FUNCTIONS",
    "ArityError",
    "Budget",
    "BudgetExceededError",
    "CompiledValue",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "FunctionInfo",
    "Lambda",
    "ParseError",
    "References",
    "Template",
    "UnknownFunctionError",
    "compile_expression",
    "compile_iterator",
    "compile_lambda",
    "compile_template",
    "compile_value",
]
