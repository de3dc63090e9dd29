"""POST /api/v1/alerts/wazuh with fuzzed bodies, through both front doors, on a real SQLite store.

Properties: the status is one of 202/400/413/415/422 (never a 5xx); every refusal is JSON naming
a field or a position; a 202 accounts for every item and the store gains exactly the alerts it
reports as accepted, each with a complete normalised view and a raw alert that parses back; a
refused request writes no alert row.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from api.conftest import Api
from fuzz.checks import (
    INTAKE_STATUSES,
    check_folding,
    check_receipts,
    check_refusal,
    note_status,
    store_mark,
)
from fuzz.conftest import IntakeApps
from fuzz.strategies import FUZZ_SHARED_APP, SAMPLES, STORABLE_DEPTH, Body, alert_bodies, raw_bodies
from hypothesis import example, given
from hypothesis import strategies as st

URL = "/api/v1/alerts/wazuh"


def post_and_check(api: Api, body: Body) -> int:
    mark = store_mark(api)
    headers = {} if body.content_type is None else {"Content-Type": body.content_type}
    r = api.post(URL, content=body.content, headers=headers)
    assert r.status_code in INTAKE_STATUSES, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    payload = orjson.loads(r.content)
    note_status(f"{body.kind} body", r.status_code, payload)
    if r.status_code == 202:
        check_receipts(api, mark, payload, "wazuh", body.items)
    else:
        check_refusal(api, mark, r.status_code, payload)
    if r.status_code != 413:
        # a 400 means the body is not JSON at all; a bad item is that item's error
        if body.kind == "ndjson":
            assert r.status_code != 400
        elif body.kind in ("single", "array"):
            assert (r.status_code == 400) == (not _decodes(body.content)), r.text[:300]
    return r.status_code


def _decodes(content: bytes) -> bool:
    try:
        orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    return True


@FUZZ_SHARED_APP
@given(body=alert_bodies(), fast=st.booleans())
def test_alert_bodies(intake_apps: IntakeApps, body: Body, fast: bool) -> None:
    post_and_check(intake_apps.pick(fast), body)


@FUZZ_SHARED_APP
@given(body=raw_bodies(), fast=st.booleans())
@example(body=Body(b"[]", "application/json"), fast=True)  # was an IndexError: a 500
@example(body=Body(b"[]", None), fast=False)
@example(body=Body(b"", "application/json"), fast=True)
@example(body=Body(b"", "application/x-ndjson"), fast=False)
@example(body=Body(b"\n \n\r\n", "application/x-ndjson"), fast=True)
@example(body=Body(b'"\\ud800"', "application/json"), fast=True)
@example(body=Body(b"\xef\xbb\xbf{}", "application/json"), fast=False)  # a UTF-8 BOM
@example(body=Body(b"[" * 1025 + b"]" * 1025, "application/json"), fast=True)
@example(body=Body(b'{"rule": {"level": 1e400}}', None), fast=False)
@example(body=Body(b"x" * (600 * 1024), "application/json"), fast=True)  # 413 on both
def test_raw_bodies(intake_apps: IntakeApps, body: Body, fast: bool) -> None:
    post_and_check(intake_apps.pick(fast), body)


def test_stored_alerts_fold(intake_apps: IntakeApps) -> None:
    """Alerts that survived mutation are also fine for folding, which reads them back."""

    @FUZZ_SHARED_APP
    @given(body=alert_bodies())
    def post(body: Body) -> None:
        post_and_check(intake_apps.fast, body)

    post()
    check_folding(intake_apps.fast)


def test_a_body_without_an_alert_object_is_422_naming_the_body(intake_apps: IntakeApps) -> None:
    """Found by fuzzing: `[]` crashed the answer (IndexError, a 500), and the 422 for a lone
    value that is not an object named neither a field nor a position."""
    for api in (intake_apps.fast, intake_apps.framework):
        for content in (b"[]", b" [ ] ", b"3", b"null", b'"alert"', b"true"):
            mark = store_mark(api)
            r = api.post(URL, content=content, headers={"Content-Type": "application/json"})
            assert (r.status_code, r.json()["field"]) == (422, "body"), (content, r.text)
            assert store_mark(api) == mark


def _deep_alert(depth: int) -> bytes:
    doc = SAMPLES["sshd_bruteforce_nonexistent_user_5712.json"]
    head = orjson.dumps({**doc, "id": f"deep.{depth}"})[:-1]
    return head + b',"deep":' + b"[" * depth + b"]" * depth + b"}"


def test_alert_nested_as_deep_as_the_store_allows_is_stored(intake_apps: IntakeApps) -> None:
    body = _deep_alert(STORABLE_DEPTH - 1)  # the alert object itself is the first level
    for api in (intake_apps.fast, intake_apps.framework):
        assert post_and_check(api, Body(body, "application/json", "single", [body])) == 202


def test_deeply_nested_alert_is_refused_not_a_server_error(intake_apps: IntakeApps) -> None:
    body = _deep_alert(STORABLE_DEPTH)
    for api in (intake_apps.fast, intake_apps.framework):
        post_and_check(api, Body(body, "application/json", "single", [body]))


@pytest.mark.postgres
def test_nul_in_a_text_column_is_not_a_server_error_on_postgres(
    api_factory: Callable[..., Api],
) -> None:
    api = api_factory()
    doc = {**SAMPLES["sshd_bruteforce_nonexistent_user_5712.json"], "id": "nul.1"}
    doc["rule"] = {**doc["rule"], "description": "a\u0000b"}  # becomes the title
    body = orjson.dumps(doc)
    post_and_check(api, Body(body, "application/json", "single", [body]))
