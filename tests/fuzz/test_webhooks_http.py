"""Signed webhooks (GitHub, Standard Webhooks) and the ExtraHop trigger route, with fuzzed payloads.

A validly signed payload is never a 5xx: it is stored (202, and the store gains exactly the
accepted alerts), acknowledged and ignored, or refused with a JSON 4xx naming the field. A bad
signature is a 401 and stores nothing. ExtraHop's route takes a bearer token, not a signature, so
it is fuzzed like Wazuh intake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from api.conftest import Api
from fuzz.checks import (
    INTAKE_STATUSES,
    check_receipts,
    check_refusal,
    note_status,
    store_mark,
)
from fuzz.strategies import (
    FUZZ_SHARED_APP,
    NDJSON_TYPES,
    json_values,
    mutated_docs,
    to_wire,
    wire_values,
)
from fuzz.test_normalisation import DETECTIONS, GITHUB_PAYLOADS, STANDARD_EVENTS
from hypothesis import given
from hypothesis import strategies as st
from unit.sources.test_extrahop import contract_detection, trigger

from casefold.signing import sign_github

GITHUB_SECRET = "It's a Secret to Everybody"
SIEM_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Header values a client library will send: printable ASCII.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@pytest.fixture
def hooks(api_factory: Callable[..., Api], tmp_path: Path) -> Api:
    return api_factory(
        secrets={
            "github": {"WEBHOOK_SECRET": GITHUB_SECRET},
            "siem": {"WEBHOOK_SECRET": SIEM_SECRET},
        },
        webhook_sources={"siem": "siem"},
        webhook_events_file=tmp_path / "events.json",
        sqlite_synchronous="NORMAL",
    )


@st.composite
def payloads(draw: st.DrawFn, fresh: st.SearchStrategy[Any], samples: list[Any]) -> bytes:
    """A valid payload, a mutated one, any JSON value, or JSON only a careless sender writes."""
    mutated = mutated_docs(samples)
    value = draw(st.one_of(fresh, fresh, mutated, mutated, json_values, wire_values))
    return to_wire(value, ascii_only=draw(st.booleans()))


@st.composite
def github_deliveries(draw: st.DrawFn) -> tuple[str, bytes]:
    """(X-GitHub-Event, body): mostly the event the payload was written for."""
    name = draw(st.sampled_from(sorted(GITHUB_PAYLOADS)))
    body = draw(payloads(st.just(GITHUB_PAYLOADS[name]), list(GITHUB_PAYLOADS.values())))
    others = st.one_of(st.sampled_from([*GITHUB_PAYLOADS, "ping", "push"]), HEADER_TEXT)
    return draw(st.one_of(st.just(name), st.just(name), others)), body


# Detections with an id of their own: the same detection twice is a duplicate, not a new alert.
FRESH_DETECTIONS = st.builds(
    lambda n, wrap: trigger(contract_detection(id=n)) if wrap else contract_detection(id=n),
    st.uuids().map(lambda u: u.int >> 65),  # why: plain integers() repeats small values
    st.booleans(),
)


def check_signed(api: Api, mark: Any, r: Any, source: str, events_before: int) -> None:
    assert r.status_code in INTAKE_STATUSES, (r.status_code, r.text[:500])
    payload = orjson.loads(r.content)
    note_status(source, r.status_code, payload)
    if r.status_code != 202:
        check_refusal(api, mark, r.status_code, payload)
        if r.status_code == 422:
            assert payload.get("field"), payload  # a signed sender is told which field
        assert _event_lines(api) == events_before
        return
    if "ignored" in payload:  # an event GitHub sends that we do not turn into alerts
        assert payload["accepted"] == 0 and store_mark(api) == mark
        return
    check_receipts(api, mark, payload, source)
    # what was accepted is also written for the Wazuh agent, one JSON line each
    assert _event_lines(api) == events_before + payload["accepted"]


def _event_lines(api: Api) -> int:
    path = api.runtime.settings.webhook_events_file
    if path is None or not path.exists():
        return 0
    lines = path.read_text().splitlines()
    for line in lines:
        json.loads(line)
    return len(lines)


@FUZZ_SHARED_APP
@given(
    delivered=github_deliveries(),
    delivery=st.one_of(st.uuids().map(str), st.uuids().map(str), HEADER_TEXT),
    signed=st.sampled_from(["good", "good", "good", "good", "wrong", "garbled", "missing"]),
)
def test_github(hooks: Api, delivered: tuple[str, bytes], delivery: str, signed: str) -> None:
    event, body = delivered
    mark, events_before = store_mark(hooks), _event_lines(hooks)
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signed != "missing":
        secret = GITHUB_SECRET if signed != "wrong" else "guess"
        signature = sign_github(secret, body)
        headers["X-Hub-Signature-256"] = signature if signed != "garbled" else signature[:-3]
    r = hooks.client.post("/api/v1/alerts/github", content=body, headers=headers)
    if signed != "good":
        assert r.status_code == 401, r.text[:300]
        check_refusal(hooks, mark, 401, orjson.loads(r.content))
        return
    check_signed(hooks, mark, r, "github", events_before)


def standard_signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` as the Standard Webhooks spec defines it, computed here: the
    library's own signer refuses ids with whitespace, which a sender may still send."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.digest(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest).decode()


@FUZZ_SHARED_APP
@given(
    body=payloads(st.sampled_from(STANDARD_EVENTS), STANDARD_EVENTS),
    msg_id=st.one_of(st.from_regex(r"\Amsg_[a-z0-9]{1,12}\Z"), HEADER_TEXT),
    skew=st.sampled_from([0, 0, 5, -5, 250, -250, 400, -400, 10**6]),
    signed=st.sampled_from(["good", "good", "good", "wrong", "garbled"]),
)
def test_standard_webhooks(hooks: Api, body: bytes, msg_id: str, skew: int, signed: str) -> None:
    mark, events_before = store_mark(hooks), _event_lines(hooks)
    ts = int(time.time()) + skew
    secret = SIEM_SECRET if signed != "wrong" else "whsec_Z3Vlc3M="
    signature = standard_signature(secret, msg_id, ts, body)
    if signed == "garbled":
        signature = signature[:-4] + "AAA="
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    r = hooks.client.post("/api/v1/alerts/webhook/siem", content=body, headers=headers)
    if signed != "good" or abs(skew) > 300 or not msg_id:
        assert r.status_code == 401, r.text[:300]
        check_refusal(hooks, mark, 401, orjson.loads(r.content))
        return
    check_signed(hooks, mark, r, "siem", events_before)


@FUZZ_SHARED_APP
@given(
    items=st.lists(payloads(FRESH_DETECTIONS, DETECTIONS), min_size=1, max_size=4),
    ndjson=st.booleans(),
    ctype=st.sampled_from(NDJSON_TYPES),
)
def test_extrahop(hooks: Api, items: list[bytes], ndjson: bool, ctype: str) -> None:
    mark = store_mark(hooks)
    if ndjson:
        content, headers = b"\n".join(items), {"Content-Type": ctype}
    else:
        content, headers = b"[" + b",".join(items) + b"]", {"Content-Type": "application/json"}
    r = hooks.post("/api/v1/alerts/extrahop", content=content, headers=headers)
    assert r.status_code in INTAKE_STATUSES, (r.status_code, r.text[:500])
    payload = orjson.loads(r.content)
    note_status("extrahop", r.status_code, payload)
    if r.status_code == 202:
        check_receipts(hooks, mark, payload, "extrahop", items)
    else:
        check_refusal(hooks, mark, r.status_code, payload)
