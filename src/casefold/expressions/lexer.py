"""Tokenizer for the expression language.

One master regular expression (stdlib ``re``: the patterns are ours and linear)
splits the source into ``Token`` tuples. String literals are decoded here, with
Python-like escapes; unknown escapes such as ``\\d`` are kept verbatim so regex
patterns written in expressions keep working (Tracecat did no escape processing
at all, so ``'\\n'`` stayed two characters there).

Keywords (``if``, ``else``, ``in``, ``not``, ``is``, ``True``…) are lexed as
``NAME`` and recognised by the parser, because the same words are legal path
segments (``TRIGGER.data.in`` is a key lookup).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import ParseError

__all__ = ["MAX_SOURCE_LENGTH", "Token", "decode_string", "tokenize"]

#: Longest expression source accepted (characters).
MAX_SOURCE_LENGTH = 100_000
_MAX_NUMBER_DIGITS = 400


class Token(NamedTuple):
    kind: str  # NAME, NUMBER, STRING, OP, EOF
    value: object
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>->|==|!=|>=|<=|&&|\|\||\.\.|[()\[\]{},:.*?@+\-/%><&|])
    """,
    re.VERBOSE | re.DOTALL,
)

_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


def decode_string(body: str) -> str:
    """Decode the escapes of a string literal body (without its quotes)."""
    if "\\" not in body:
        return body

    def repl(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "uU" and len(esc) > 1:
            cp = int(esc[1:], 16)
            return chr(cp) if cp <= 0x10FFFF else m.group(0)
        return _SIMPLE_ESCAPES.get(esc, m.group(0))

    return _ESCAPE_RE.sub(repl, body)


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``EOF`` token."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise ParseError(
            f"expression is longer than {MAX_SOURCE_LENGTH} characters", source, MAX_SOURCE_LENGTH
        )
    tokens: list[Token] = []
    pos = 0
    end = len(source)
    match = _TOKEN_RE.match
    while pos < end:
        m = match(source, pos)
        if m is None:
            ch = source[pos]
            if ch in "'\"":
                raise ParseError("unterminated string literal", source, pos)
            if ch == "=":
                raise ParseError("unexpected '=' (use '==' to compare)", source, pos)
            if ch == "!":
                raise ParseError("unexpected '!' (use 'not' or '!=')", source, pos)
            raise ParseError(f"unexpected character {ch!r}", source, pos)
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            pass
        elif kind == "name":
            if text.startswith("__"):
                raise ParseError("names starting with '__' are not allowed", source, pos)
            tokens.append(Token("NAME", text, pos))
        elif kind == "number":
            if len(text) > _MAX_NUMBER_DIGITS:
                raise ParseError("numeric literal is too long", source, pos)
            if any(c in text for c in ".eE"):
                value: object = float(text)
            else:
                value = int(text)
            tokens.append(Token("NUMBER", value, pos))
        elif kind == "string":
            tokens.append(Token("STRING", decode_string(text[1:-1]), pos))
        else:
            tokens.append(Token("OP", text, pos))
        pos = m.end()
    tokens.append(Token("EOF", None, end))
    return tokens
