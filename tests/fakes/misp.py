"""A fake MISP, only ``POST /attributes/restSearch``, after external-apis.md §6.3.

Auth is the bare auth key in ``Authorization`` ("Bearer <key>" is refused, as MISP does); a
missing or wrong key gets 403 ``{"name", "message", "url"}``. The JSON body's filters honoured:
``value`` (string or list; case-insensitive, matching either half of composite types such as
``filename|sha256``), ``type`` (string or list), ``to_ids`` (absent: any), ``enforceWarninglist``
(drops values on the fake's warninglist), ``includeEventTags`` (adds the event's tags to each
attribute's ``Tag``), ``limit`` and ``page``. Deleted attributes never match.

MISP has no quota; ``fail_next(n)`` makes the next n requests fail (500 by default) instead.

    with MISPFake() as misp:
        misp.add_attribute("116.163.24.195", "ip-dst", event_info="Cobalt Strike C2")
        r = httpx.post(misp.url + "/attributes/restSearch",
                       json={"value": "116.163.24.195"}, headers={"Authorization": misp.api_key})
        assert r.json()["response"]["Attribute"][0]["Event"]["info"] == "Cobalt Strike C2"
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_API_KEY = "MispTestAuthKey0000000000000000000000000"  # MISP keys are 40 characters
SEARCH = "/attributes/restSearch"
AUTH_FAILED = (
    "Authentication failed. Please make sure you pass the API key of an API enabled user along "
    "in the Authorization header."
)
TAG_COLOURS = {"tlp:red": "#CC0033", "tlp:amber": "#FFC000", "tlp:green": "#339900"}
_CATEGORIES = {
    "ip-src": "Network activity",
    "ip-dst": "Network activity",
    "domain": "Network activity",
    "hostname": "Network activity",
    "url": "Network activity",
    "link": "External analysis",
}


@dataclass
class Event:
    id: str
    info: str
    tags: list[str] = field(default_factory=list)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


def _error(status: int, name: str, url: str) -> Reply:
    return Reply(status, {"name": name, "message": name, "url": url})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _flag(value: Any) -> bool | None:
    """A MISP boolean filter: true/false, 1/0 or "1"/"0"; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


class MISPFake(FakeServer):
    name = "misp-fake"

    def __init__(
        self, *, api_key: str = DEFAULT_API_KEY, warninglist: Iterable[str] = ("8.8.8.8",)
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.warninglist = {v.lower() for v in warninglist}
        self.events: dict[str, Event] = {}
        self.attributes: list[dict[str, Any]] = []  # stored without Event and Tag inlined
        self.attribute_tags: dict[str, list[str]] = {}  # attribute id → tag names
        self._failures: deque[int] = deque()
        self._ids = itertools.count(1043)
        self._event_ids = itertools.count(42)

    # --- configuration ---------------------------------------------------------------------

    def add_event(self, info: str, tags: Iterable[str] = (), event_id: str | None = None) -> Event:
        with self._lock:
            ident = event_id or str(next(self._event_ids))
            event = Event(ident, info, list(tags))
            self.events[ident] = event
        return event

    def add_attribute(
        self,
        value: str,
        type: str = "ip-dst",  # MISP's own field name
        *,
        event_id: str | None = None,
        event_info: str = "Cobalt Strike C2 infrastructure",
        to_ids: bool = True,
        category: str | None = None,
        comment: str = "C2",
        tags: Iterable[str] = ("tlp:amber",),
        deleted: bool = False,
    ) -> dict[str, Any]:
        """Add an attribute; without `event_id` it goes to the event with `event_info`
        (created when there is none)."""
        if event_id is None:
            event = next((e for e in self.events.values() if e.info == event_info), None)
            event_id = (event or self.add_event(event_info)).id
        elif event_id not in self.events:
            self.add_event(event_info, event_id=event_id)
        with self._lock:
            ident = str(next(self._ids))
            attribute = {
                "id": ident,
                "event_id": event_id,
                "object_id": "0",
                "object_relation": None,
                "category": category or _CATEGORIES.get(type, "Payload delivery"),
                "type": type,
                "to_ids": to_ids,
                "uuid": str(uuid.uuid4()),
                "timestamp": "1714650000",
                "distribution": "5",
                "sharing_group_id": "0",
                "comment": comment,
                "deleted": deleted,
                "disable_correlation": False,
                "first_seen": None,
                "last_seen": None,
                "value": value,
            }
            self.attributes.append(attribute)
            self.attribute_tags[ident] = list(tags)
        return attribute

    def add_to_warninglist(self, value: str) -> None:
        with self._lock:
            self.warninglist.add(value.lower())

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (MISP's CakePHP error body)."""
        with self._lock:
            self._failures.extend([status] * count)

    # --- counters --------------------------------------------------------------------------

    def searches(self) -> list[dict[str, Any]]:
        """The JSON bodies of the restSearch requests received, in order."""
        with self._lock:
            recorded = [r.request for r in self.requests if r.request.path == SEARCH]
        bodies = []
        for request in recorded:
            try:
                body = request.json()
            except ValueError:
                body = None
            bodies.append(body if isinstance(body, dict) else {})
        return bodies

    def calls_for(self, value: str) -> int:
        """Searches whose `value` named `value`, whatever their answer."""
        wanted = value.lower()
        return sum(
            1
            for body in self.searches()
            if wanted in {str(v).lower() for v in _as_list(body.get("value"))}
        )

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        with self._lock:
            if self._failures:
                status = self._failures.popleft()
                return _error(status, "An Internal Error Has Occurred.", request.path)
            if request.headers.get("authorization") != self.api_key:
                return _error(403, AUTH_FAILED, request.path)
            if request.path != SEARCH:
                return _error(404, "Not Found", request.path)
            if request.method != "POST":
                return _error(405, "Method Not Allowed", request.path)
            try:
                query = request.json()
            except ValueError:
                query = None
            if not isinstance(query, dict):
                return _error(400, "Invalid request body: JSON object expected", request.path)
            return Reply(200, {"response": {"Attribute": self._search(query)}})

    def _search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        values = {str(v).lower() for v in _as_list(query.get("value"))}
        types = {str(t) for t in _as_list(query.get("type"))}
        to_ids = _flag(query.get("to_ids"))
        warn = bool(_flag(query.get("enforceWarninglist")))
        event_tags = bool(_flag(query.get("includeEventTags")))
        matches = []
        for attribute in self.attributes:
            value = str(attribute["value"]).lower()
            parts = {value, *value.split("|")} if "|" in attribute["type"] else {value}
            if attribute["deleted"] or (values and not values & parts):
                continue
            if types and attribute["type"] not in types:
                continue
            if to_ids is not None and attribute["to_ids"] != to_ids:
                continue
            if warn and parts & self.warninglist:
                continue
            matches.append(self._render(attribute, event_tags))
        limit = int(query.get("limit") or 0)
        page = max(int(query.get("page") or 1), 1)
        if limit > 0:
            matches = matches[(page - 1) * limit : page * limit]
        return matches

    def _render(self, attribute: dict[str, Any], event_tags: bool) -> dict[str, Any]:
        event = self.events[attribute["event_id"]]
        names = list(self.attribute_tags.get(attribute["id"], []))
        if event_tags:
            names += [t for t in event.tags if t not in names]
        return {
            **attribute,
            "Event": {
                "org_id": "1",
                "distribution": "1",
                "id": event.id,
                "info": event.info,
                "orgc_id": "1",
                "uuid": event.uuid,
            },
            "Tag": [
                {
                    "id": str(i + 1),
                    "name": name,
                    "colour": TAG_COLOURS.get(name, "#0088CC"),
                    "numerical_value": None,
                }
                for i, name in enumerate(names)
            ],
        }
