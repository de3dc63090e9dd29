"""Errors raised by the expression language.

Every failure the package can produce is an :class:`ExpressionError`, so callers
(the playbook engine, the validator, the API) catch one root and decide there.
The tree, as HTTPX draws its own::

    ExpressionError
    ├── ParseError                 bad source; carries source, offset, line, column, caret
    │   ├── UnknownFunctionError   ``FN.nope(...)``, found at compile time
    │   └── ArityError             ``FN.lookup(x)``: wrong number of arguments
    └── EvaluationError            the source was fine, the data or an operation was not
        └── BudgetExceededError    a step, size, depth, regex-time or number-size limit

Parse errors point at the offending character (like jmespath's ``ParseError``).
Evaluation errors carry the offset of the node that failed when it is known.
"""

from __future__ import annotations

__all__ = [
    "ArityError",
    "BudgetExceededError",
    "EvaluationError",
    "ExpressionError",
    "ParseError",
    "UnknownFunctionError",
]


def _line_col(source: str, offset: int) -> tuple[int, int, str]:
    """1-based line and column of ``offset`` and the text of that line."""
    offset = max(0, min(offset, len(source)))
    line_start = source.rfind("\n", 0, offset) + 1
    line_end = source.find("\n", offset)
    if line_end == -1:
        line_end = len(source)
    line = source.count("\n", 0, offset) + 1
    return line, offset - line_start + 1, source[line_start:line_end]


class ExpressionError(Exception):
    """Root of every error raised by :mod:`casefold.expressions`."""


class ParseError(ExpressionError):
    """The source text is not a valid expression or template.

    ``offset`` is 0-based into ``source``; ``line`` and ``column`` are 1-based.
    ``str(err)`` renders the message, the offending line and a caret under the spot.
    """

    def __init__(self, message: str, source: str = "", offset: int = 0) -> None:
        self.message = message
        self.source = source
        self.offset = offset
        self.line, self.column, self._line_text = _line_col(source, offset)
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.source:
            return self.message
        text = self._line_text
        caret_col = self.column - 1
        # Long lines are windowed so the caret stays readable.
        if len(text) > 100:
            start = max(0, caret_col - 50)
            text = ("…" if start else "") + text[start : start + 100]
            caret_col = caret_col - start + (1 if start else 0)
        return (
            f"{self.message} at line {self.line}, column {self.column}:\n"
            f"  {text}\n"
            f"  {' ' * caret_col}^"
        )

    def shifted(self, source: str, delta: int) -> ParseError:
        """The same error re-anchored in an enclosing ``source`` (templates use this)."""
        err = type(self).__new__(type(self))
        ParseError.__init__(err, self.message, source, self.offset + delta)
        return err


class UnknownFunctionError(ParseError):
    """``FN.<name>`` names no registered function."""


class ArityError(ParseError):
    """A function is called with a number of arguments it does not accept."""


class EvaluationError(ExpressionError):
    """Evaluating a compiled expression failed (bad types, division by zero, …).

    ``offset`` is the 0-based position of the failing node in ``source`` when known.
    """

    def __init__(self, message: str, *, source: str | None = None, offset: int | None = None):
        self.message = message
        self.source = source
        self.offset = offset
        super().__init__(message)

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        where = ""
        if self.offset is not None:
            line, col, _ = _line_col(self.source, self.offset)
            where = f" (line {line}, column {col})"
        src = self.source if len(self.source) <= 200 else self.source[:200] + "…"
        return f"{self.message}{where} in expression: {src.strip()}"


class BudgetExceededError(EvaluationError):
    """An evaluation hit a limit of its :class:`~casefold.expressions.Budget`."""
