"""The source parsers, called directly on mutated real payloads and on JSON of any shape.

Each either returns an alert whose normalised view orjson can encode (what the store does) and
whose observables are well-formed, or raises an InvalidInputError; nothing else. The documents are
what our decoder can hand over (see strategies.json_values); tests/unit/sources has its own random
tests of field types, these start from real payloads and aim at the checks behind the first ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from fuzz.checks import check_alert
from fuzz.strategies import FUZZ, json_values, mutated_alerts, mutated_docs
from hypothesis import given
from hypothesis import strategies as st
from unit.sources.test_extrahop import contract_detection, trigger
from unit.sources.test_github import advisory, code_scanning, dependabot, secret_scanning
from unit.sources.test_github import vulnerability as repository_vulnerability

from casefold.errors import InvalidInputError
from casefold.sources.extrahop import parse_extrahop_detection
from casefold.sources.github import HANDLED_EVENTS, parse_github_event, parse_standard_event
from casefold.sources.wazuh import parse_wazuh_alert

GITHUB_PAYLOADS = {
    "code_scanning_alert": code_scanning(),
    "secret_scanning_alert": secret_scanning(),
    "dependabot_alert": dependabot(),
    "repository_vulnerability_alert": repository_vulnerability(),
    "security_advisory": advisory(),
}
STANDARD_EVENTS = [
    {
        "type": "siem.detection",
        "timestamp": "2026-11-22T10:00:00Z",
        "data": {
            "title": "Impossible travel",
            "severity": "high",
            "rule_id": "travel-1",
            "observables": [
                {"type": "ip", "value": "116.163.24.195"},
                {"type": "hash", "value": "D41D8CD98F00B204E9800998ECF8427F"},
                {"type": "url", "value": "https://example.org/x"},
                {"type": "user", "value": "alice"},
                {"type": "domain", "value": "Example.ORG."},
                {"type": "hostname", "value": "ws-01"},
            ],
        },
    },
    {"type": "siem.heartbeat"},
]
DETECTIONS = [contract_detection(), trigger(contract_detection())]
ANY_OBJECT = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def parse_or_refuse(parse: Any, *args: Any, source: str | None = None) -> None:
    try:
        alert = parse(*args)
    except InvalidInputError as exc:
        assert exc.message  # a refusal says why
        return
    if alert is not None:
        check_alert(alert, source)


@FUZZ
@given(doc=st.one_of(mutated_alerts(), json_values, ANY_OBJECT))
def test_wazuh(doc: Any) -> None:
    parse_or_refuse(parse_wazuh_alert, doc, source="wazuh")


@FUZZ
@given(doc=st.one_of(mutated_docs(DETECTIONS), json_values))
def test_extrahop(doc: Any) -> None:
    parse_or_refuse(parse_extrahop_detection, doc, source="extrahop")


@FUZZ
@given(
    event=st.sampled_from(sorted(HANDLED_EVENTS)),
    doc=st.one_of(mutated_docs(list(GITHUB_PAYLOADS.values())), ANY_OBJECT),
    delivery=st.one_of(st.uuids().map(str), st.text(max_size=140)),
)
def test_github(event: str, doc: Any, delivery: str) -> None:
    parse_or_refuse(parse_github_event, event, delivery, doc, source="github")


@FUZZ
@given(
    doc=st.one_of(mutated_docs(STANDARD_EVENTS), ANY_OBJECT),
    msg_id=st.one_of(st.just("msg_1"), st.text(max_size=20)),
)
def test_standard_webhook_event(doc: Any, msg_id: str) -> None:
    parse_or_refuse(parse_standard_event, doc, msg_id, "siem", source="siem")


@pytest.mark.parametrize("name", sorted(GITHUB_PAYLOADS))
def test_github_payloads_start_valid(name: str) -> None:
    """The mutations start from payloads the parsers accept, or they would test only refusals."""
    check_alert(parse_github_event(name, "d-1", GITHUB_PAYLOADS[name]), "github")


def test_other_payloads_start_valid() -> None:
    for doc in STANDARD_EVENTS:
        check_alert(parse_standard_event(doc, "msg_1", "siem"), "siem")
    for doc in DETECTIONS:
        check_alert(parse_extrahop_detection(doc), "extrahop")
