"""Coverage-guided fuzzing of `casefold.sources.wazuh.parse_wazuh_alert`.

Inputs are JSON texts (seed the corpus with real alerts, see README.md); what orjson decodes,
as intake would, goes to the parser. It returns an alert whose normalised view orjson can encode
and whose observables are well-formed, or raises InvalidInputError. Nothing else escapes.
"""

from __future__ import annotations

import atheris
from _harness import run

with atheris.instrument_imports():
    import orjson

    from casefold.errors import InvalidInputError
    from casefold.sources.wazuh import parse_wazuh_alert
from fuzz.checks import check_alert  # tests/fuzz/checks.py: not instrumented, not under test


def test_one_input(data: bytes) -> None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    try:
        alert = parse_wazuh_alert(doc)
    except InvalidInputError:
        return
    check_alert(alert, "wazuh")


if __name__ == "__main__":
    run(test_one_input)
