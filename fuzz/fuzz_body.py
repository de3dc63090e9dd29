"""Coverage-guided fuzzing of the intake body splitter, `casefold.intake.body.parse_body`.

Any bytes under any content type: the body is split into items (one per array element or
non-blank NDJSON line, each a document or that line's error), or refused with InvalidJSONError
(with a line and column) or InvalidInputError naming the body. Nothing else escapes.
"""

from __future__ import annotations

import atheris
from _harness import run

with atheris.instrument_imports():
    import orjson

    from casefold.errors import InvalidInputError
    from casefold.intake.body import NDJSON_TYPES, InvalidJSONError, parse_body

CONTENT_TYPES = [None, "application/json", "text/plain", *NDJSON_TYPES]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    ctype = CONTENT_TYPES[fdp.ConsumeIntInRange(0, len(CONTENT_TYPES) - 1)]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        parsed = parse_body(body, ctype)
    except InvalidJSONError as exc:
        assert exc.line >= 1 and exc.column >= 1, (exc.line, exc.column)
        return
    except InvalidInputError as exc:
        assert exc.field == "body", exc
        return
    items = parsed.items
    assert items and [i.index for i in items] == list(range(len(items)))
    if ctype in NDJSON_TYPES:
        lines = [n for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
        assert [i.line for i in items] == lines
        for item in items:
            assert (item.error is None) or (item.doc is None and item.error.message)
    else:
        doc = orjson.loads(body)
        assert parsed.single is not isinstance(doc, list)
        assert [i.doc for i in items] == (doc if isinstance(doc, list) else [doc])


if __name__ == "__main__":
    run(test_one_input)
