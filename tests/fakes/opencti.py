"""A fake OpenCTI GraphQL endpoint, answering the wazuh-opencti query (external-apis.md §1.3, §10).

One route, ``POST /graphql`` (other paths 404, other methods 405). In the order a real platform
behind a reverse proxy applies them:

* failures queued with ``fail_next`` (500 / 502 / 429 / a 200 HTML page that is not JSON), as a
  proxy in front of OpenCTI would send them;
* HTTP 400 with an Apollo-style ``errors`` body for a body that is not a JSON object, a content
  type that is not JSON, a missing ``query``, or variables not shaped as FilterGroups;
* HTTP 200 + ``AUTH_REQUIRED`` and ``data: null`` for a missing or wrong
  ``Authorization: Bearer <token>``;
* HTTP 200 + ``UNSUPPORTED_ERROR`` and ``data: null`` for an observable filter key the schema does
  not know, e.g. ``hashes.SHA256`` on OpenCTI 6 ("Schema definition named [hashes] is missing
  mapping for attribute [SHA256]");
* otherwise HTTP 200 ``{"data": {"indicators": …, "stixCyberObservables": …}}`` built from the
  canned indicators and observables the filters select (``first: 10`` honoured, ``globalCount``
  the full count). Timestamps are always ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

Filter semantics follow OpenCTI: a filter's values are or-ed (its ``mode``), the group's
``mode`` combines filters, matching is exact (so an upper-case hash misses a lower-case one).
An indicator is returned when its pattern is one of the requested patterns, or one of its
``also_matches`` patterns is (to reproduce a "partial" pattern match)::

    with OpenCTIFake() as cti:
        ind = cti.add_indicator("[ipv4-addr:value = '1.2.3.4']", name="C2", score=80)
        dom = cti.add_observable("Domain-Name", "evil.example", score=60)
        ip = cti.add_observable("IPv4-Addr", "1.2.3.4", indicators=[ind])
        cti.relate(dom, ip, "resolves-to")
        cti.fail_next(2, 500)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_TOKEN = "opencti-test-token"
# Hash attributes of the OpenCTI 6 StixFile schema; "SHA256" (no hyphen) is not one of them.
HASH_ATTRIBUTES = ("MD5", "SHA-1", "SHA-256", "SHA-512", "SSDEEP")
OBSERVABLE_TYPES = ("IPv4-Addr", "IPv6-Addr", "Domain-Name", "Hostname", "Url", "StixFile")
_NAME_TYPES = ("Domain-Name", "Hostname")
_ADDR_TYPES = ("IPv4-Addr", "IPv6-Addr")
_CREATED = datetime(2023, 8, 30, 13, 39, 42, 959000, tzinfo=UTC)
_UPDATED = datetime(2023, 8, 30, 13, 39, 42, 985000, tzinfo=UTC)
_VALID_UNTIL = datetime(2099, 1, 1, tzinfo=UTC)

AUTH_REQUIRED = {
    "errors": [
        {
            "message": "You must be logged in to do this.",
            "locations": [{"line": 2, "column": 3}],
            "path": ["indicators"],
            "extensions": {
                "code": "AUTH_REQUIRED",
                "data": {"http_status": 401, "genre": "TECHNICAL"},
            },
            "name": "AUTH_REQUIRED",
        }
    ],
    "data": None,
}
BODY_MISSING = "POST body missing, invalid Content-Type, or JSON object has no keys."
QUERY_MISSING = (
    "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension."
)


def stamp(when: datetime | str | None) -> str | None:
    """OpenCTI's timestamp form, milliseconds and "Z" always (the integration parses it so)."""
    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Creator:
    """The organisation an object was created by (createdBy)."""

    name: str = "ThreatFox Abuse.ch"
    reliability: str | None = "B"
    organization_type: str | None = None
    id: str = field(default_factory=_new_id)

    def node(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "standard_id": f"identity--{uuid.uuid5(uuid.NAMESPACE_URL, self.name)}",
            "identity_class": "organization",
            "name": self.name,
            "x_opencti_organization_type": self.organization_type,
            "x_opencti_reliability": self.reliability,
        }


@dataclass
class Indicator:
    pattern: str
    name: str
    id: str = field(default_factory=_new_id)
    score: int | None = 50
    confidence: int | None = 50
    revoked: bool = False
    detection: bool = False
    valid_until: datetime | str | None = _VALID_UNTIL
    created: datetime | str = _CREATED
    updated: datetime | str = _UPDATED
    creator: Creator | None = None
    labels: tuple[str, ...] = ()
    kill_chain_phases: tuple[str, ...] = ()
    external_references: tuple[str, ...] = ()
    indicator_types: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    pattern_type: str = "stix"
    also_matches: tuple[str, ...] = ()  # other requested patterns that also select it

    def short(self) -> dict[str, Any]:
        """The IndShort fragment."""
        return {
            "id": self.id,
            "name": self.name,
            "valid_until": stamp(self.valid_until),
            "revoked": self.revoked,
            "confidence": self.confidence,
            "x_opencti_score": self.score,
            "x_opencti_detection": self.detection,
            "indicator_types": list(self.indicator_types) or None,
            "x_mitre_platforms": list(self.platforms) or None,
            "pattern_type": self.pattern_type,
            "pattern": self.pattern,
            "objectLabel": [{"value": v} for v in self.labels],
            "killChainPhases": [{"kill_chain_name": k} for k in self.kill_chain_phases],
        }

    def long(self) -> dict[str, Any]:
        """The IndLong fragment: Object + IndShort."""
        return {**_object(self, "Indicator"), **self.short()}


@dataclass
class Observable:
    type: str  # one of OBSERVABLE_TYPES
    value: str | None = None  # None for a StixFile
    id: str = field(default_factory=_new_id)
    hashes: dict[str, str] = field(default_factory=dict)  # StixFile: {"SHA-256": "…", …}
    name: str | None = None  # StixFile
    size: int | None = None  # StixFile
    score: int | None = None
    description: str | None = None
    indicators: list[Indicator] = field(default_factory=list)
    created: datetime | str = _CREATED
    updated: datetime | str = _UPDATED
    creator: Creator | None = None
    labels: tuple[str, ...] = ()
    external_references: tuple[str, ...] = ()

    @property
    def observable_value(self) -> str | None:
        if self.type != "StixFile":
            return self.value
        for algorithm in ("SHA-256", "SHA-1", "MD5"):
            if self.hashes.get(algorithm):
                return self.hashes[algorithm]
        return self.name

    def indicators_part(self) -> dict[str, Any]:
        return {"indicators": {"edges": [{"node": i.short()} for i in self.indicators]}}


@dataclass(frozen=True)
class Relationship:
    source: Observable
    target: Observable
    relationship_type: str


def _object(entity: Indicator | Observable, entity_type: str) -> dict[str, Any]:
    """The Object fragment."""
    return {
        "id": entity.id,
        "type": entity_type,
        "created_at": stamp(entity.created),
        "updated_at": stamp(entity.updated),
        "createdBy": entity.creator.node() if entity.creator else None,
        "objectLabel": [{"value": v} for v in entity.labels],
        "externalReferences": {"edges": [{"node": {"url": u}} for u in entity.external_references]},
    }


def _error(name: str, message: str, path: str, http_status: int = 500) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": message,
                "locations": [{"line": 2, "column": 3}],
                "path": [path],
                "extensions": {
                    "code": name,
                    "data": {"http_status": http_status, "genre": "TECHNICAL"},
                },
                "name": name,
            }
        ],
        "data": None,
    }


def _bad_request(message: str, code: str = "BAD_REQUEST") -> Reply:
    return Reply(400, {"errors": [{"message": message, "extensions": {"code": code}}]})


class _Invalid(Exception):
    """A request the fake answers with an error reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@dataclass
class _Filter:
    key: str
    values: list[str]


def _group(variables: dict[str, Any], name: str) -> tuple[str, list[_Filter]]:
    group = variables.get(name)
    problem = f'Variable "${name}" got invalid value; expected a FilterGroup'
    if not isinstance(group, dict) or not isinstance(group.get("filters"), list):
        raise _Invalid(_bad_request(problem, "BAD_USER_INPUT"))
    filters = []
    for item in group["filters"]:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("key"), str)
            or not isinstance(item.get("values"), list)
            or not all(isinstance(v, str) for v in item["values"])
        ):
            raise _Invalid(_bad_request(problem, "BAD_USER_INPUT"))
        filters.append(_Filter(item["key"], list(item["values"])))
    mode = group.get("mode", "and")
    return (mode if mode in ("and", "or") else "and"), filters


def _combine(mode: str, results: list[bool]) -> bool:
    return all(results) if mode == "and" else any(results)


class OpenCTIFake(FakeServer):
    name = "opencti-fake"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        hash_attributes: Iterable[str] = HASH_ATTRIBUTES,
        page_size_cap: int = 10,
    ) -> None:
        super().__init__()
        self.token = token
        self.hash_attributes = tuple(hash_attributes)  # add "SHA256" to act as OpenCTI 5.x
        self.page_size_cap = page_size_cap
        self.indicators: list[Indicator] = []
        self.observables: list[Observable] = []
        self.relationships: list[Relationship] = []
        self._state = threading.Lock()
        self._failures: list[Reply] = []

    # --- canned content ---------------------------------------------------------------------

    def add_indicator(self, pattern: str, name: str | None = None, **fields: Any) -> Indicator:
        """An indicator for `pattern`; keyword arguments are `Indicator` fields."""
        for key in (
            "labels",
            "kill_chain_phases",
            "external_references",
            "indicator_types",
            "platforms",
            "also_matches",
        ):
            if key in fields:
                fields[key] = tuple(fields[key])
        indicator = Indicator(pattern, name or pattern, **fields)
        with self._state:
            self.indicators.append(indicator)
        return indicator

    def add_observable(
        self,
        type_: str,
        value: str | None = None,
        *,
        indicators: Iterable[Indicator] = (),
        **fields: Any,
    ) -> Observable:
        """An observable with its own indicators (added with `add_indicator` or not)."""
        if type_ not in OBSERVABLE_TYPES:
            raise ValueError(f"the fake knows no observable type {type_!r}")
        for key in ("labels", "external_references"):
            if key in fields:
                fields[key] = tuple(fields[key])
        observable = Observable(type_, value, indicators=list(indicators), **fields)
        with self._state:
            self.observables.append(observable)
        return observable

    def relate(
        self, source: Observable, target: Observable, relationship_type: str = "resolves-to"
    ) -> Relationship:
        """A relationship source → target (e.g. a Domain-Name resolves-to an IPv4-Addr)."""
        relationship = Relationship(source, target, relationship_type)
        with self._state:
            self.relationships.append(relationship)
        return relationship

    def fail_next(
        self, count: int = 1, status: int | str = 500, retry_after: str | None = None
    ) -> None:
        """Answer the next `count` requests with `status` (an int, or "not-json": a 200 HTML
        page such as a proxy's login form), before any other check."""
        if status == "not-json":
            reply = Reply(200, "<html><body>Please sign in</body></html>", content_type="text/html")
        elif status == 429:
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            reply = Reply(429, "Too Many Requests", headers, content_type="text/plain")
        elif isinstance(status, int):
            reply = Reply(
                status, f"<html><body>{status} Server Error</body></html>", {}, "text/html"
            )
        else:
            raise ValueError(f"unknown failure {status!r}")
        with self._state:
            self._failures.extend(reply for _ in range(count))

    # --- counters -----------------------------------------------------------------------------

    def bodies(self) -> list[Any]:
        """The JSON body of every POST /graphql, in order (None when not JSON)."""
        with self._lock:
            requests = [r.request for r in self.requests]
        result = []
        for request in requests:
            if request.method != "POST" or request.path != "/graphql":
                continue
            try:
                result.append(request.json())
            except orjson.JSONDecodeError:
                result.append(None)
        return result

    def last_variables(self) -> dict[str, Any]:
        body = self.bodies()[-1]
        return body["variables"]

    def calls_for(self, value: str) -> int:
        """Requests whose observable filters named `value` (every status counts)."""
        count = 0
        for body in self.bodies():
            try:
                filters = body["variables"]["obs"]["filters"]
                if any(value in f.get("values", []) for f in filters):
                    count += 1
            except (KeyError, TypeError):
                continue
        return count

    # --- the API ------------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        with self._state:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure
        if request.path != "/graphql":
            return Reply(404, "Not Found", content_type="text/plain")
        if request.method != "POST":
            return Reply(405, "Method Not Allowed", {"Allow": "POST"}, "text/plain")
        try:
            return self._answer(request)
        except _Invalid as invalid:
            return invalid.reply

    def _answer(self, request: FakeRequest) -> Reply:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _bad_request(BODY_MISSING)
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return _bad_request(BODY_MISSING)
        if not isinstance(body, dict) or not body:
            return _bad_request(BODY_MISSING)
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return _bad_request(QUERY_MISSING)
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return _bad_request("Variables must be an object.", "BAD_USER_INPUT")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(200, AUTH_REQUIRED)
        with self._state:
            indicators = list(self.indicators)
            observables = list(self.observables)
            relationships = list(self.relationships)
        data: dict[str, Any] = {}
        if "indicators(" in query:
            data["indicators"] = self._page(
                [i.long() for i in self._select_indicators(variables, indicators)]
            )
        if "stixCyberObservables(" in query:
            selected = self._select_observables(variables, observables)
            data["stixCyberObservables"] = self._page(
                [self._observable_node(o, relationships) for o in selected]
            )
        return Reply(200, {"data": data})

    def _select_indicators(
        self, variables: dict[str, Any], indicators: list[Indicator]
    ) -> list[Indicator]:
        mode, filters = _group(variables, "ind")
        for f in filters:
            if f.key not in ("pattern", "pattern_type"):
                raise _Invalid(
                    Reply(
                        200,
                        _error("UNSUPPORTED_ERROR", "Invalid filter configuration", "indicators"),
                    )
                )

        def keep(indicator: Indicator) -> bool:
            results = []
            for f in filters:
                if f.key == "pattern_type":
                    results.append(indicator.pattern_type in f.values)
                else:
                    patterns = {indicator.pattern, *indicator.also_matches}
                    results.append(bool(patterns.intersection(f.values)))
            return _combine(mode, results) if results else True

        return [i for i in indicators if keep(i)]

    def _select_observables(
        self, variables: dict[str, Any], observables: list[Observable]
    ) -> list[Observable]:
        mode, filters = _group(variables, "obs")
        for f in filters:
            if f.key == "value":
                continue
            prefix, _, attribute = f.key.partition(".")
            if prefix == "hashes" and attribute not in self.hash_attributes:
                message = (
                    f"Schema definition named [hashes] is missing mapping for attribute "
                    f"[{attribute}]"
                )
                raise _Invalid(
                    Reply(200, _error("UNSUPPORTED_ERROR", message, "stixCyberObservables"))
                )
            if prefix != "hashes":
                raise _Invalid(
                    Reply(
                        200,
                        _error(
                            "UNSUPPORTED_ERROR",
                            "Invalid filter configuration",
                            "stixCyberObservables",
                        ),
                    )
                )

        def keep(observable: Observable) -> bool:
            results = []
            for f in filters:
                if f.key == "value":
                    have = observable.value if observable.type != "StixFile" else None
                else:
                    have = observable.hashes.get(f.key.partition(".")[2])
                results.append(have is not None and have in f.values)
            return _combine(mode, results) if results else True

        return [o for o in observables if keep(o)]

    def _observable_node(
        self, observable: Observable, relationships: list[Relationship]
    ) -> dict[str, Any]:
        node: dict[str, Any] = {
            **_object(observable, observable.type),
            "observable_value": observable.observable_value,
            "x_opencti_description": observable.description,
            "x_opencti_score": observable.score,
            **observable.indicators_part(),
        }
        if observable.type in (*_NAME_TYPES, "Url"):
            # Relationships to addresses and names, as `toTypes` asks.
            edges = [
                {
                    "node": {
                        "type": r.target.type,
                        "relationship_type": r.relationship_type,
                        "related": _related(r.target),
                    }
                }
                for r in relationships
                if r.source is observable and r.target.type in (*_ADDR_TYPES, *_NAME_TYPES)
            ]
            node.update(value=observable.value, stixCoreRelationships={"edges": edges})
        elif observable.type in _ADDR_TYPES:
            # Relationships from names to this address, as `fromTypes` asks.
            edges = [
                {
                    "node": {
                        "type": r.source.type,
                        "relationship_type": r.relationship_type,
                        "related": _related(r.source),
                    }
                }
                for r in relationships
                if r.target is observable and r.source.type in _NAME_TYPES
            ]
            node.update(value=observable.value, stixCoreRelationships={"edges": edges})
        elif observable.type == "StixFile":
            node.update(
                extensions=None,
                size=observable.size,
                name=observable.name,
                x_opencti_additional_names=None,
            )
        return node

    def _page(self, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        shown = nodes[: self.page_size_cap]
        cursor = (lambda i: f"cursor-{i}") if shown else (lambda i: "")
        return {
            "edges": [{"node": n} for n in shown],
            "pageInfo": {
                "startCursor": cursor(0),
                "endCursor": cursor(len(shown) - 1),
                "hasNextPage": len(nodes) > len(shown),
                "hasPreviousPage": False,
                "globalCount": len(nodes),
            },
        }


def _related(entity: Observable) -> dict[str, Any]:
    """AddrRelation / NameRelation: id, value and the entity's own indicators."""
    return {"id": entity.id, "value": entity.value, **entity.indicators_part()}
