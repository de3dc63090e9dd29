"""``${{ … }}`` templates and whole ``args`` values, compiled once.

Finding templates is a real scan, not Tracecat's lazy regex: inside ``${{`` the
scanner skips string literals (honouring backslash escapes) and counts ``{``/``}``
so neither ``'}}'`` in a literal nor ``{'a': {'b': 1}}`` ends the template early.
An unterminated ``${{`` or string literal is a ParseError pointing at it.

Rendering rules (documented in docs/expressions.md):

* **Typed path**: a string that is exactly one template (it starts with ``${{``
  and ends with ``}}``) renders to the expression's own value (int, list, dict,
  None…). Leading/trailing whitespace forces the string path, as in Tracecat.
* **String path**: otherwise each template is replaced by its *text form*:
  strings as-is, numbers via ``str``, and ``None``/booleans/dicts/lists as JSON
  (``null``, ``true``, ``{"a":1}``). Tracecat used Python ``str()`` (``None``,
  ``True``, ``{'a': 1}``); JSON is what downstream tickets and APIs expect.
  Substituted text is never re-scanned, so data containing ``${{`` is inert.
* ``compile_value`` walks dicts and lists (keys too) and renders all templates
  of one value with a single shared budget. Parts without templates are returned
  as the very same objects, without copying: treat rendered values as read-only.
  Two keys that render equal are an error (``key collision``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .budget import Budget, EvalState
from .compiler import EMPTY_REFERENCES, Expression, References, compile_expression
from .errors import EvaluationError, ParseError
from .operators import to_text
from .typenames import type_name

__all__ = ["CompiledValue", "Template", "compile_template", "compile_value", "find_templates"]

_OPEN = "${{"
_MAX_VALUE_DEPTH = 64


def find_templates(text: str) -> list[str | tuple[str, int]]:
    """Split ``text`` into literal strings and ``(expression source, offset)`` pairs."""
    parts: list[str | tuple[str, int]] = []
    pos = 0
    n = len(text)
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            if pos < n:
                parts.append(text[pos:])
            return parts
        if start > pos:
            parts.append(text[pos:start])
        i = start + 3
        depth = 0
        while True:
            if i >= n:
                raise ParseError("unterminated '${{' (missing '}}')", text, start)
            c = text[i]
            if c == "'" or c == '"':
                j = i + 1
                while j < n and text[j] != c:
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    raise ParseError("unterminated string literal", text, i)
                i = j + 1
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0 and text.startswith("}}", i):
                    break
                depth = max(depth - 1, 0)
            i += 1
        parts.append((text[start + 3 : i], start + 3))
        pos = i + 2


class Template:
    """A compiled template string. ``render`` returns a value (typed path) or a string."""

    __slots__ = ("text", "references", "is_static", "_typed", "_parts")

    def __init__(self, text: str) -> None:
        self.text = text
        raw = find_templates(text)
        parts: list[str | Expression] = []
        refs = EMPTY_REFERENCES
        for p in raw:
            if isinstance(p, str):
                parts.append(p)
                continue
            source, offset = p
            try:
                expr = compile_expression(source)
            except ParseError as e:
                raise e.shifted(text, offset) from None
            refs = refs | expr.references
            parts.append(expr)
        self._parts = tuple(parts)
        self.references: References = refs
        self.is_static = not any(isinstance(p, Expression) for p in parts)
        # Typed path: exactly one template and nothing around it.
        self._typed: Expression | None = (
            parts[0] if len(parts) == 1 and isinstance(parts[0], Expression) else None
        )

    def render(self, context: Mapping[str, Any], budget: Budget | None = None) -> Any:
        """Render with a fresh budget."""
        if self._typed is not None:
            # One expression: let it skip the budget state when it needs none.
            return self._typed.evaluate(context, budget=budget)
        return self._render(context, EvalState(budget))

    def _render(self, context: Mapping[str, Any], st: EvalState) -> Any:
        if self.is_static:
            return self.text
        if self._typed is not None:
            return self._typed._eval(context, st)
        out: list[str] = []
        size = 0
        for p in self._parts:
            piece = p if isinstance(p, str) else to_text(p._eval(context, st))
            size += len(piece)
            out.append(piece)
        st.reserve(size, "rendered template")
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def compile_template(text: str) -> Template:
    """Compile a string that may contain ``${{ … }}`` templates."""
    if not isinstance(text, str):
        raise ParseError(f"template must be a string, got {type(text).__name__}")
    return Template(text)


Renderer = Callable[[Mapping[str, Any], EvalState], Any]


class CompiledValue:
    """A compiled ``args``-style value (dicts, lists, strings, scalars)."""

    __slots__ = ("value", "references", "is_static", "_render_fn")

    def __init__(self, value: Any, render_fn: Renderer | None, references: References):
        self.value = value
        self.references = references
        self.is_static = render_fn is None
        self._render_fn = render_fn

    def render(self, context: Mapping[str, Any], budget: Budget | None = None) -> Any:
        """The value with every template rendered (static parts returned as-is)."""
        if self._render_fn is None:
            return self.value
        return self._render_fn(context, EvalState(budget))


def _compile_value(obj: Any, depth: int, path: str) -> tuple[Renderer | None, References]:
    if depth > _MAX_VALUE_DEPTH:
        raise ParseError(f"value nested deeper than {_MAX_VALUE_DEPTH} levels at {path}")
    if isinstance(obj, str):
        if _OPEN not in obj:
            return None, EMPTY_REFERENCES
        t = compile_template(obj)
        return (None if t.is_static else t._render), t.references
    if isinstance(obj, Mapping):
        return _compile_mapping(obj, depth, path)
    if isinstance(obj, list | tuple):
        items = [_compile_value(v, depth + 1, f"{path}[{i}]") for i, v in enumerate(obj)]
        refs = EMPTY_REFERENCES
        for _, r in items:
            refs = refs | r
        if all(fn is None for fn, _ in items):
            return None, refs
        fns = tuple((fn, v) for (fn, _), v in zip(items, obj, strict=True))

        def render_list(ctx: Mapping[str, Any], st: EvalState) -> Any:
            return [v if fn is None else fn(ctx, st) for fn, v in fns]

        return render_list, refs
    return None, EMPTY_REFERENCES


def _compile_mapping(
    obj: Mapping[Any, Any], depth: int, path: str
) -> tuple[Renderer | None, References]:
    entries = []
    refs = EMPTY_REFERENCES
    dynamic = False
    for k, v in obj.items():
        kfn: Renderer | None = None
        if isinstance(k, str) and _OPEN in k:
            kt = compile_template(k)
            refs = refs | kt.references
            kfn = None if kt.is_static else kt._render
        vfn, vrefs = _compile_value(v, depth + 1, f"{path}.{k}")
        refs = refs | vrefs
        dynamic = dynamic or kfn is not None or vfn is not None
        entries.append((k, kfn, v, vfn))
    if not dynamic:
        return None, refs
    has_dynamic_keys = any(kfn is not None for _, kfn, _, _ in entries)
    frozen = tuple(entries)

    def render_dict(ctx: Mapping[str, Any], st: EvalState) -> Any:
        out: dict[Any, Any] = {}
        for k, kfn, v, vfn in frozen:
            if kfn is not None:
                k = kfn(ctx, st)
                try:
                    hash(k)
                except TypeError:
                    raise EvaluationError(
                        f"object key rendered to an unhashable value: {_preview(k)}"
                    ) from None
            if has_dynamic_keys and k in out:
                raise EvaluationError(f"key collision: two keys render to {_preview(k)}")
            out[k] = v if vfn is None else vfn(ctx, st)
        return out

    return render_dict, refs


def _preview(value: Any) -> str:
    """A key for an error message. Never a plain repr: the key is data, and the repr of a deeply
    nested list raises RecursionError, that of a 5000-digit integer ValueError."""
    if isinstance(value, str):
        return repr(value[:60]) + ("…" if len(value) > 60 else "")
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if type(value) is int and value.bit_length() <= 192:
        return str(value)
    return f"<{type_name(value)}>"


def compile_value(obj: Any) -> CompiledValue:
    """Compile every templated string (and dict key) inside ``obj`` once."""
    fn, refs = _compile_value(obj, 0, "$")
    return CompiledValue(obj, fn, refs)
