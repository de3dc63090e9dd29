"""FN catalogue, part 2: strings, safe formatting, encodings, hashes, regex, tables.

Security notes:

* ``format`` is **not** ``str.format``. Tracecat's ``FN.format('{0.__class__}', x)``
  reads arbitrary attributes; ours parses the template itself and accepts only
  ``{}``, ``{N}`` and a bounded numeric/alignment spec (``{:>8}``, ``{0:.2f}``).
  Attribute/index traversal (``{0.x}``, ``{0[x]}``), named fields and ``!r``
  conversions are errors.
* regex functions use the ``regex`` module with the budget's timeout, and
  patterns are compiled once (LRU cache): alert text is attacker-controlled, so
  ``(a+)+$`` must fail fast instead of pinning a worker.
* every function that builds a string computes its size first and reserves it
  against the budget.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import html
import io
import re
import unicodedata
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

from ..budget import EvalState
from ..errors import EvaluationError
from ._util import canonical_json, regex_call, regex_pattern, text_of, type_name
from .registry import register

_UNESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\\\": "\\"}
_UNESCAPE_RE = re.compile(r"\\[ntr\\]")


def _unescape(sep: str) -> str:
    # Tracecat unescapes join separators so a YAML-literal '\n' works either way.
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group()], sep) if "\\" in sep else sep


# --- building strings ----------------------------------------------------------------


@register(category="strings", state=True)
def concat(st: EvalState, *items: Any) -> str:
    """Concatenate the arguments as text."""
    parts = [text_of(i) for i in items]
    st.reserve(sum(map(len, parts)), "concat result")
    return "".join(parts)


@register(category="strings", state=True)
def join(st: EvalState, items: list, sep: str = ",") -> str:
    """Join items (as text) with ``sep``; ``'\\n'`` in ``sep`` is unescaped."""
    sep = _unescape(sep)
    st.charge(len(items))
    parts = [text_of(i) for i in items]
    st.reserve(sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0), "join result")
    return sep.join(parts)


@register(category="strings", state=True)
def split(st: EvalState, x: str, sep: str | None = None, maxsplit: int = -1) -> list:
    """Split ``x`` on ``sep`` (whitespace when omitted)."""
    if sep == "":
        raise EvaluationError("split separator cannot be empty")
    out = x.split(sep, maxsplit)
    st.charge(len(out))
    return out


_FIELD_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}")
_SPEC_RE = re.compile(r"^(?:.?[<>^=])?[+\- ]?#?0?(\d{0,3})[,_]?(?:\.(\d{1,2}))?[bcdeEfFgGnosxX%]?$")


@register("format", category="strings", state=True)
def format_(st: EvalState, template: str, *values: Any) -> str:
    """Safe positional formatting: ``{}``, ``{0}``, ``{:>8}``, ``{0:.2f}``, ``{{``/``}}``."""
    out: list[str] = []
    auto = 0
    explicit = False
    size = 0
    pos = 0
    for m in _FIELD_RE.finditer(template):
        out.append(template[pos : m.start()])
        size += m.start() - pos
        pos = m.end()
        token = m.group()
        if token == "{{":
            out.append("{")
        elif token == "}}":
            out.append("}")
        elif token in ("{", "}"):
            raise EvaluationError(f"unbalanced {token!r} in format template")
        else:
            field = m.group(1)
            name, _, spec = field.partition(":")
            if name == "":
                if explicit:
                    raise EvaluationError("cannot mix {} and {N} in one format template")
                index = auto
                auto += 1
            elif name.isdigit() and len(name) < 4:
                if auto:
                    raise EvaluationError("cannot mix {} and {N} in one format template")
                explicit = True
                index = int(name)
            else:
                raise EvaluationError(
                    f"format field {{{field}}} is not allowed: only {{}}, {{N}} and simple "
                    "format specs (no attribute, index or named fields)"
                )
            if index >= len(values):
                raise EvaluationError(f"format field {index} has no matching argument")
            value = values[index]
            if spec:
                if not _SPEC_RE.match(spec):
                    raise EvaluationError(f"format spec {spec!r} is not allowed")
                if not isinstance(value, int | float | str) or value is None:
                    raise EvaluationError(
                        f"format spec needs a number or string, got {type_name(value)}"
                    )
                try:
                    piece = format(value, spec)
                except (ValueError, TypeError) as e:
                    raise EvaluationError(f"format spec {spec!r}: {e}") from None
            else:
                piece = text_of(value)
            out.append(piece)
            size += len(piece)
        if size > st.budget.max_output_bytes:
            st.reserve(size, "format result")
    out.append(template[pos:])
    size += len(template) - pos
    st.reserve(size, "format result")
    return "".join(out)


@register(category="strings", state=True)
def replace(st: EvalState, x: str, old: str, new: str) -> str:
    """Replace every ``old`` with ``new`` (result size checked first)."""
    count = x.count(old) if old else len(x) + 1
    st.reserve(len(x) + count * (len(new) - len(old)), "replace result")
    return x.replace(old, new)


@register("slice", category="strings")
def slice_(x: str | list, start: int, length: int | None = None) -> Any:
    """``length`` items/characters of ``x`` from ``start``."""
    if length is None:
        return x[start:]
    if length < 0:
        raise EvaluationError("slice length cannot be negative")
    end = start + length
    return x[start:end] if end != 0 or start >= 0 else x[start:]


def _affix(st: EvalState, x: Any, affix: str, before: bool) -> Any:
    if isinstance(x, list | tuple):
        st.charge(len(x))
        st.reserve(sum(len(text_of(i)) + len(affix) for i in x), "result")
        return [(affix + text_of(i)) if before else (text_of(i) + affix) for i in x]
    s = text_of(x)
    st.reserve(len(s) + len(affix), "result")
    return affix + s if before else s + affix


@register(category="strings", state=True)
def prefix(st: EvalState, x: Any, p: str) -> Any:
    """Prepend ``p`` to a string or to every item of a list."""
    return _affix(st, x, p, True)


@register(category="strings", state=True)
def suffix(st: EvalState, x: Any, s: str) -> Any:
    """Append ``s`` to a string or to every item of a list."""
    return _affix(st, x, s, False)


@register(category="strings")
def capitalize(x: str) -> str:
    """First character upper-case, rest lower-case."""
    return x.capitalize()


@register(category="strings")
def titleize(x: str) -> str:
    """Title Case."""
    return x.title()


@register(category="strings")
def uppercase(x: str) -> str:
    """UPPER CASE."""
    return x.upper()


@register(category="strings")
def lowercase(x: str) -> str:
    """lower case."""
    return x.lower()


@register(category="strings")
def strip(x: str, chars: str | None = None) -> str:
    """Strip whitespace (or ``chars``) from both ends."""
    return x.strip(chars)


_SLUG_RE = re.compile(r"[^a-z0-9]+")


@register(category="strings")
def slugify(x: str) -> str:
    """``'Hello, World!'`` → ``'hello-world'``."""
    ascii_text = unicodedata.normalize("NFKD", x).encode("ascii", "ignore").decode()
    return _SLUG_RE.sub("-", ascii_text.lower()).strip("-")


@register(category="strings")
def startswith(x: str, prefix: str) -> bool:
    """True if ``x`` starts with ``prefix``."""
    return x.startswith(prefix)


@register(category="strings")
def endswith(x: str, suffix: str) -> bool:
    """True if ``x`` ends with ``suffix``."""
    return x.endswith(suffix)


# --- encodings and hashes -----------------------------------------------------------------


@register(category="encoding")
def url_encode(x: str, safe: str = "") -> str:
    """Percent-encode (``safe`` characters are kept)."""
    return urllib.parse.quote(x, safe=safe)


@register(category="encoding")
def url_decode(x: str) -> str:
    """Decode percent-encoding."""
    return urllib.parse.unquote(x)


def _bytes(x: Any) -> bytes:
    if isinstance(x, str):
        return x.encode("utf-8", "surrogatepass")
    if isinstance(x, bytes):
        return x
    raise EvaluationError(f"expected a string, got {type_name(x)}")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EvaluationError("decoded bytes are not valid UTF-8 text") from None


@register(category="encoding")
def to_base64(x: str) -> str:
    """Base64 of the UTF-8 bytes."""
    return base64.b64encode(_bytes(x)).decode()


@register(category="encoding")
def from_base64(x: str) -> str:
    """Decode base64 to UTF-8 text."""
    try:
        return _decode(base64.b64decode(x + "=" * (-len(x) % 4), validate=False))
    except binascii.Error as e:
        raise EvaluationError(f"invalid base64: {e}") from None


@register(category="encoding")
def to_base64url(x: str) -> str:
    """URL-safe base64 of the UTF-8 bytes."""
    return base64.urlsafe_b64encode(_bytes(x)).decode()


@register(category="encoding")
def from_base64url(x: str) -> str:
    """Decode URL-safe base64 to UTF-8 text."""
    try:
        return _decode(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except binascii.Error as e:
        raise EvaluationError(f"invalid base64url: {e}") from None


def _hash_input(x: Any) -> bytes:
    return _bytes(x) if isinstance(x, str | bytes) else canonical_json(x).encode()


@register(category="hashing")
def hash_md5(x: Any) -> str:
    """Hex MD5 (strings as UTF-8, other values as canonical JSON)."""
    return hashlib.md5(_hash_input(x), usedforsecurity=False).hexdigest()


@register(category="hashing")
def hash_sha1(x: Any) -> str:
    """Hex SHA-1."""
    return hashlib.sha1(_hash_input(x), usedforsecurity=False).hexdigest()


@register(category="hashing")
def hash_sha256(x: Any) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(_hash_input(x)).hexdigest()


@register(category="hashing")
def hash_sha512(x: Any) -> str:
    """Hex SHA-512."""
    return hashlib.sha512(_hash_input(x)).hexdigest()


@register(category="hashing")
def fingerprint(*values: Any) -> str:
    """SHA-256 hex of the canonical JSON of the arguments: a stable dedup key."""
    return hashlib.sha256(canonical_json(list(values)).encode()).hexdigest()


@register(category="strings", deterministic=False)
def uuid4() -> str:
    """A random UUID (version 4)."""
    return str(uuid.uuid4())


# --- regex ----------------------------------------------------------------------------------


@register(category="regex", state=True)
def regex_extract(st: EvalState, pattern: str, text: str | None) -> Any:
    """First capture group that matched (else the whole match) of the first match, or None."""
    if text is None:
        return None
    m = regex_call(st, regex_pattern(pattern).search, text)
    if m is None:
        return None
    for g in m.groups():
        if g is not None:
            return g
    return m.group(0)


@register(category="regex", state=True)
def regex_extract_all(st: EvalState, pattern: str, text: str | None) -> list:
    """Every match (first non-empty group, else whole match), bounded."""
    if text is None:
        return []
    found = regex_call(st, regex_pattern(pattern).findall, text)
    st.charge(len(found))
    return [next((g for g in f if g), "") if isinstance(f, tuple) else f for f in found]


@register(category="regex", state=True)
def regex_match(st: EvalState, pattern: str, text: str | None) -> bool:
    """True if the pattern matches at the start of ``text`` (``re.match``)."""
    if text is None:
        return False
    return regex_call(st, regex_pattern(pattern).match, text) is not None


@register(category="regex", state=True)
def regex_not_match(st: EvalState, pattern: str, text: str | None) -> bool:
    """Opposite of regex_match."""
    return not regex_match(st, pattern, text)


@register(category="regex", state=True)
def regex_search(st: EvalState, pattern: str, text: str | None) -> bool:
    """True if the pattern matches anywhere in ``text``."""
    if text is None:
        return False
    return regex_call(st, regex_pattern(pattern).search, text) is not None


@register(category="regex", state=True)
def regex_replace(st: EvalState, pattern: str, repl: str, text: str) -> str:
    """Replace matches with ``repl`` (``\\1`` group references allowed)."""
    compiled = regex_pattern(pattern)
    n = len(regex_call(st, compiled.findall, text))
    st.reserve(len(text) + n * (len(repl) + 64), "regex_replace result")
    try:
        return regex_call(st, compiled.sub, repl, text)  # type: ignore[no-any-return]
    except (IndexError, re.error) as e:
        raise EvaluationError(f"bad replacement {repl!r}: {e}") from None


# --- markdown and tables --------------------------------------------------------------------


def _cell(v: Any) -> str:
    return text_of(v).replace("|", "\\|").replace("\n", " ")


@register(category="formatting", state=True)
def to_markdown_list(st: EvalState, items: list, ordered: bool = False) -> str:
    """``- a\\n- b`` (or ``1. a``)."""
    st.charge(len(items))
    lines = [
        f"{i + 1}. {text_of(v)}" if ordered else f"- {text_of(v)}" for i, v in enumerate(items)
    ]
    st.reserve(sum(len(line) + 1 for line in lines), "markdown list")
    return "\n".join(lines)


@register(category="formatting", state=True)
def to_markdown_tasks(st: EvalState, items: list) -> str:
    """``- [ ] a`` per item."""
    st.charge(len(items))
    lines = [f"- [ ] {text_of(v)}" for v in items]
    st.reserve(sum(len(line) + 1 for line in lines), "markdown tasks")
    return "\n".join(lines)


def _rows(items: Any) -> tuple[list[str], list[list[Any]]]:
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list | tuple):
        raise EvaluationError(f"a table needs a list of objects, got {type_name(items)}")
    headers: list[str] = []
    for row in items:
        if not isinstance(row, Mapping):
            raise EvaluationError(f"a table needs a list of objects, found {type_name(row)}")
        for k in row:
            if str(k) not in headers:
                headers.append(str(k))
    return headers, [[row.get(h) for h in headers] for row in items]


@register(category="formatting", state=True)
def to_markdown_table(st: EvalState, items: list | dict) -> str:
    """A GitHub-flavoured markdown table from a list of objects."""
    return tabulate(st, items, "markdown")


@register(category="formatting", state=True)
def tabulate(st: EvalState, items: list | dict, format: str = "markdown") -> str:
    """Render a list of objects as ``markdown``, ``csv`` or ``html``."""
    headers, rows = _rows(items)
    st.charge(len(rows))
    if format == "markdown":
        lines = [
            "| " + " | ".join(_cell(h) for h in headers) + " |",
            "| " + " | ".join("---" for _ in headers) + " |",
        ]
        lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
        out = "\n".join(lines)
    elif format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        for r in rows:
            writer.writerow(["" if v is None else text_of(v) for v in r])
        out = buf.getvalue().rstrip("\n")
    elif format == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(text_of(v))}</td>" for v in r) + "</tr>"
            for r in rows
        )
        out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    else:
        raise EvaluationError(f"unknown table format {format!r} (markdown, csv, html)")
    st.reserve(len(out), "table")
    return out
