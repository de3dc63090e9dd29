"""The properties every fuzz test asserts: what a normalised alert, an error body and a stored
batch must look like, whatever went in. The atheris harnesses in fuzz/ use them too."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from hypothesis import currently_in_test_context, event
from sqlalchemy import func, select

from casefold.sources.model import OBSERVABLE_TYPES, NormalizedAlert
from casefold.store.tables import ALERT_PENDING, alerts

if TYPE_CHECKING:  # the atheris harnesses in fuzz/ import the checks without the test app
    from api.conftest import Api

# What intake may answer when the request is authenticated: never a 5xx.
INTAKE_STATUSES = frozenset({202, 400, 413, 415, 422})
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "imphash": 32}
NORMALIZED_FIELDS = frozenset(f.name for f in dataclasses.fields(NormalizedAlert))
_LOWER_HEX = re.compile(r"[0-9a-f]+")


def check_observable(o: dict[str, Any]) -> None:
    assert o["type"] in OBSERVABLE_TYPES, o
    assert isinstance(o["value"], str) and o["value"], o
    assert isinstance(o["field"], str) and o["field"], o
    if o["type"] == "ip":
        ip = ipaddress.ip_address(o["value"])
        assert str(ip) == o["value"], o  # normalised: compressed IPv6, no IPv4-mapped form
        assert o["kind"] == f"ipv{ip.version}", o
        assert isinstance(o["public"], bool), o
    elif o["type"] == "hash":
        assert _LOWER_HEX.fullmatch(o["value"]), o
        assert len(o["value"]) == HASH_LENGTHS[o["kind"]], o
    elif o["type"] == "url":
        assert o["value"].lower().startswith(("http://", "https://")), o
        assert not any(c.isspace() for c in o["value"]), o
    elif o["type"] in ("domain", "hostname"):
        assert o["value"] == o["value"].lower() and not any(c.isspace() for c in o["value"]), o


def check_normalized(view: dict[str, Any], source: str | None = None) -> None:
    """A complete normalised view, as `NormalizedAlert.to_dict` or the store holds it."""
    assert set(view) == NORMALIZED_FIELDS, sorted(set(view) ^ NORMALIZED_FIELDS)
    if source is not None:
        assert view["source"] == source
    for name in ("source", "source_id", "node", "time_original", "title"):
        assert isinstance(view[name], str), (name, view[name])
    assert view["source_id"] and view["node"]
    assert type(view["level"]) is int and 0 <= view["level"] <= 16, view["level"]
    when = datetime.fromisoformat(view["time_utc"])
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0
    for name in ("groups", "mitre_ids", "tactics", "techniques"):
        assert all(isinstance(x, str) for x in view[name]), (name, view[name])
    keys = [(o["type"], o["value"]) for o in view["observables"]]
    assert len(keys) == len(set(keys)), keys
    for o in view["observables"]:
        check_observable(o)


def check_alert(alert: NormalizedAlert, source: str | None = None) -> None:
    """A parser's result: serialisable by the encoder the store uses, and well-formed."""
    assert isinstance(alert, NormalizedAlert)
    assert alert.time_utc.utcoffset() is not None
    view = orjson.loads(orjson.dumps(alert.to_dict()))
    check_normalized(view, source)


def check_error_body(status: int, body: Any) -> None:
    """Every refusal is JSON that names what is wrong: a field, a line and column, or items."""
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if status == 400:
        assert body["error"] == "invalid_json", body
        assert body["line"] >= 1 and body["column"] >= 1, body
    elif status == 413:
        assert body["error"] == "payload_too_large", body
    elif status == 422:
        assert "field" in body or "line" in body or "results" in body, body
        for item in body.get("results", []):
            assert isinstance(item["index"], int) and "error" in item, item
            assert item["error"]["message"], item


def note_status(label: str, status: int, payload: Any) -> None:
    """Label the example for --hypothesis-show-statistics: which answers the inputs reach."""
    if currently_in_test_context():
        field = payload.get("field") if isinstance(payload, dict) and status == 422 else None
        event(f"{label}: {status}" + (f" {field}" if field else ""))
        if status == 202 and isinstance(payload, dict) and "accepted" in payload:
            event(f"{label}: accepted {min(payload['accepted'], 2)}+")


# --- the store -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StoreMark:
    count: int
    max_id: int


def store_mark(api: Api) -> StoreMark:
    with api.runtime.engine.connect() as conn:
        count, max_id = conn.execute(select(func.count(), func.max(alerts.c.id))).one()
    return StoreMark(count, max_id or 0)


def rows_since(api: Api, mark: StoreMark) -> dict[int, Any]:
    with api.runtime.engine.connect() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.id > mark.max_id)).all()
    return {row.id: row for row in rows}


def existing_ids(api: Api, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    with api.runtime.engine.connect() as conn:
        return set(conn.scalars(select(alerts.c.id).where(alerts.c.id.in_(ids))))


def check_receipts(
    api: Api,
    mark: StoreMark,
    payload: dict[str, Any],
    source: str,
    items: list[bytes] | None = None,
) -> None:
    """A 202: every item has a receipt, and the store gained exactly the accepted alerts.

    `items` (the bytes of each item, when the sender knows them) are compared with the raw
    alerts stored for them.
    """
    results = payload["results"]
    if items is not None:
        assert len(results) == len(items), (len(results), len(items))
    assert [r["index"] for r in results] == list(range(len(results)))
    accepted = [r for r in results if "id" in r and r["duplicate"] is False]
    duplicates = [r for r in results if "id" in r and r["duplicate"] is True]
    rejected = [r for r in results if "error" in r]
    assert len(accepted) + len(duplicates) + len(rejected) == len(results), results
    assert (payload["accepted"], payload["duplicates"], payload["rejected"]) == (
        len(accepted),
        len(duplicates),
        len(rejected),
    )
    for r in rejected:
        assert r["error"]["message"] and "id" not in r, r

    new = rows_since(api, mark)
    assert store_mark(api).count == mark.count + len(accepted)
    assert set(new) == {r["id"] for r in accepted}, (sorted(new), accepted)
    # a duplicate points at a row that exists: stored earlier or by this very batch
    assert existing_ids(api, {r["id"] for r in duplicates}) == {r["id"] for r in duplicates}
    for r in accepted:
        row = new[r["id"]]
        check_normalized(row.normalized, source)
        raw = orjson.loads(row.raw)
        assert isinstance(raw, dict)
        if items is not None:
            assert raw == orjson.loads(items[r["index"]])


def check_refusal(api: Api, mark: StoreMark, status: int, payload: Any) -> None:
    """A 4xx: a JSON error body, and not one alert row written."""
    check_error_body(status, payload)
    assert store_mark(api) == mark


def check_folding(api: Api) -> None:
    """Whatever was stored can also be folded: nothing stays pending, nothing raises."""
    api.fold()
    with api.runtime.engine.connect() as conn:
        pending = conn.scalar(
            select(func.count()).select_from(alerts).where(alerts.c.state == ALERT_PENDING)
        )
    assert pending == 0
