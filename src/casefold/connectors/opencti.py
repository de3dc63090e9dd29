"""OpenCTI GraphQL: indicators and observables for a value, as the wazuh-opencti integration asks.

One POST to `<base>/graphql` finds the indicators whose STIX pattern names the value and the
observables that hold it, with their own indicators and the indicators of related names and
addresses (external-apis.md §1.3). `events` turns the answer into the `opencti` objects that
integration sends back to Wazuh (§1.4), with its crashes fixed: null scores, StixFile observables
and odd `valid_until` values are all handled.

OpenCTI answers most errors as HTTP 200 with an `errors` array, so the status code alone says
little; a missing or wrong token is such a 200 with `AUTH_REQUIRED`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from casefold.connectors.finding import Finding
from casefold.connectors.http import ProviderError, ProviderHTTP, json_body, short_body
from casefold.sources.observables import classify_ip, normalize_hash

NAME = "opencti"
DEFAULT_HASH_KEY = "hashes.SHA-256"
MAX_INDICATOR_EVENTS = 3  # direct indicator matches reported per search, best first
SUSPICIOUS_OBSERVABLE_SCORE = 50  # an observable this bad with no indicator is still suspicious

EVENT_TYPES = (
    "indicator_pattern_match",
    "indicator_partial_pattern_match",
    "observable_with_indicator",
    "observable_with_related_indicator",
)

# The relationship parts are written out per observable type: GraphQL only lets the same field
# (stixCoreRelationships) take different arguments when selected on distinct object types.
_QUERY_HEAD = """\
query IoCs($obs: FilterGroup, $ind: FilterGroup) {
  indicators(filters: $ind, first: 10) {
    edges { node { ...IndLong } }
    pageInfo { ...PageInfo }
  }
  stixCyberObservables(filters: $obs, first: 10) {
    edges {
      node {
        ...Object
        observable_value
        x_opencti_description
        x_opencti_score
        ...Indicators
"""


def _relations(type_name: str, direction: str, types: str, fragments: str) -> str:
    """The relationship selection of one observable type (to names and addresses, or from)."""
    return f"""\
        ... on {type_name} {{
          value
          stixCoreRelationships({direction}Types: [{types}]) {{
            edges {{
              node {{
                type: {direction}Type
                relationship_type
                related: {direction} {{ {fragments} }}
              }}
            }}
          }}
        }}
"""


_TO_RELATED = '"IPv4-Addr", "IPv6-Addr", "Domain-Name", "Hostname"'
_FROM_NAMES = '"Domain-Name", "Hostname"'
QUERY = (
    _QUERY_HEAD
    + "".join(
        _relations(t, "to", _TO_RELATED, "...AddrRelation ...NameRelation")
        for t in ("DomainName", "Hostname", "Url")
    )
    + "".join(
        _relations(t, "from", _FROM_NAMES, "...NameRelation") for t in ("IPv4Addr", "IPv6Addr")
    )
    + """\
        ... on StixFile {
          extensions
          size
          name
          x_opencti_additional_names
        }
      }
    }
    pageInfo { ...PageInfo }
  }
}

fragment Labels on StixCoreObject {
  objectLabel { value }
}

fragment Object on StixCoreObject {
  id
  type: entity_type
  created_at
  updated_at
  createdBy {
    ... on Identity { id standard_id identity_class name }
    ... on Organization { x_opencti_organization_type x_opencti_reliability }
    ... on Individual { x_opencti_firstname x_opencti_lastname }
  }
  ...Labels
  externalReferences { edges { node { url } } }
}

fragment IndShort on Indicator {
  id
  name
  valid_until
  revoked
  confidence
  x_opencti_score
  x_opencti_detection
  indicator_types
  x_mitre_platforms
  pattern_type
  pattern
  ...Labels
  killChainPhases { kill_chain_name }
}

fragment IndLong on Indicator {
  ...Object
  ...IndShort
}

fragment Indicators on StixCyberObservable {
  indicators { edges { node { ...IndShort } } }
}

fragment PageInfo on PageInfo {
  startCursor
  endCursor
  hasNextPage
  hasPreviousPage
  globalCount
}

fragment NameRelation on StixCyberObservable {
  ... on DomainName { id value ...Indicators }
  ... on Hostname { id value ...Indicators }
}

fragment AddrRelation on StixCyberObservable {
  ... on IPv4Addr { id value ...Indicators }
  ... on IPv6Addr { id value ...Indicators }
}
"""
)


# Hash length → (STIX pattern algorithm, OpenCTI filter attribute in the default key's style).
_HASH_ALGORITHMS = {32: ("MD5", "MD5"), 40: ("SHA-1", "SHA-1"), 64: ("SHA-256", "SHA-256")}


def endpoints(url: str) -> tuple[str, str]:
    """(GraphQL endpoint, platform base for links) from either form of the configured URL."""
    text = url.strip().rstrip("/")
    if text.lower().endswith("/graphql"):
        text = text[: -len("/graphql")].rstrip("/")
    return f"{text}/graphql", text


def stix_literal(value: str) -> str:
    """A STIX pattern string literal: quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def indicator_patterns(kind: str, value: str) -> list[str]:
    """The STIX patterns an indicator for `value` would carry (ValueError for a bad value)."""
    if kind == "ip":
        info = classify_ip(value)
        if info is None:
            raise ValueError(f"{value!r} is not an IP address")
        return [f"[{info.kind}-addr:value = {stix_literal(info.value)}]"]
    if kind == "hash":
        digest = normalize_hash(value)
        if digest is None or len(digest) not in _HASH_ALGORITHMS:
            raise ValueError(f"{value!r} is not an MD5, SHA-1 or SHA-256")
        algorithm = _HASH_ALGORITHMS[len(digest)][0]
        return [f"[file:hashes.{stix_literal(algorithm)} = {stix_literal(digest)}]"]
    if kind == "domain":
        return [
            f"[domain-name:value = {stix_literal(value)}]",
            f"[hostname:value = {stix_literal(value)}]",
        ]
    if kind == "url":
        return [f"[url:value = {stix_literal(value)}]"]
    raise ValueError(f"OpenCTI does not look up {kind!r} values")


def hash_filter_key(hash_key: str, digest: str) -> str:
    """The observable filter key for `digest`: `hash_key` names the SHA-256 attribute; MD5 and
    SHA-1 use the same prefix and spelling style (hyphenated unless the key is "SHA256")."""
    algorithm = _HASH_ALGORITHMS.get(len(digest), ("SHA-256", "SHA-256"))[1]
    if algorithm == "SHA-256":
        return hash_key
    prefix, _, attribute = hash_key.rpartition(".")
    if "-" not in attribute and attribute.upper().startswith("SHA"):
        algorithm = algorithm.replace("-", "")  # a legacy "SHA256"-style key: "SHA1" too
    return f"{prefix or 'hashes'}.{algorithm}"


class OpenCTI:
    name = NAME
    kinds = frozenset({"ip", "hash", "domain", "url"})

    def __init__(
        self, http: ProviderHTTP, url: str, token: str, *, hash_key: str = DEFAULT_HASH_KEY
    ) -> None:
        self.http = http
        self.endpoint, self.base_url = endpoints(url)
        self.token = token
        self.hash_key = hash_key or DEFAULT_HASH_KEY

    # --- the request ----------------------------------------------------------------------

    def query_key(self, kind: str, value: str = "") -> str:
        """The observable filter key a search for `value` uses."""
        return hash_filter_key(self.hash_key, value) if kind == "hash" else "value"

    def variables(self, kind: str, values: list[str]) -> dict[str, Any]:
        """`{"obs", "ind"}` filter groups for values of one kind."""
        by_key: dict[str, list[str]] = {}
        for value in values:
            # OpenCTI matches exactly: send the stored form (lower-case hash, IPv4 not mapped).
            if kind == "hash":
                value = normalize_hash(value) or value
            elif kind == "ip":
                value = getattr(classify_ip(value), "value", value)
            by_key.setdefault(self.query_key(kind, value), []).append(value)
        patterns = [p for value in values for p in indicator_patterns(kind, value)]
        return {
            "obs": {
                "mode": "or",
                "filterGroups": [],
                "filters": [{"key": key, "values": vals} for key, vals in by_key.items()],
            },
            "ind": {
                "mode": "and",
                "filterGroups": [],
                "filters": [
                    {"key": "pattern_type", "values": ["stix"]},
                    {"mode": "or", "key": "pattern", "values": patterns},
                ],
            },
        }

    def search(self, kind: str, values: list[str]) -> dict[str, Any]:
        """The GraphQL `data` for values of one kind; ProviderError when OpenCTI cannot answer."""
        if kind not in self.kinds:
            raise ValueError(f"OpenCTI does not look up {kind!r} values")
        response = self.http.request(
            "POST",
            self.endpoint,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            json={"query": QUERY, "variables": self.variables(kind, values)},
        )
        if response.status_code != 200:
            hint = " (check the API token)" if response.status_code in (401, 403) else ""
            raise ProviderError(
                NAME,
                f"answered {response.status_code}: {short_body(response)}{hint}",
                status=response.status_code,
            )
        body = json_body(NAME, response)
        if not isinstance(body, dict):
            raise ProviderError(NAME, f"answered with unexpected JSON: {short_body(response)}")
        data = body.get("data")
        # Errors beside complete data concern nested fields (e.g. a creator the token may not
        # see); the matches themselves are all there, so they are still worth reporting.
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), dict) for k in ("indicators", "stixCyberObservables")
        ):
            raise _graphql_error(body.get("errors"), response)
        return data

    # --- the answer -----------------------------------------------------------------------

    def events(
        self, data: Any, patterns: list[str], values: list[str], kind: str
    ) -> list[dict[str, Any]]:
        """The wazuh-opencti `opencti` event objects for one search, without `source`."""
        query_key = self.query_key(kind, values[0] if values else "")
        return build_events(data, patterns, values, query_key=query_key, base_url=self.base_url)

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """The request a lookup would send (for dry runs)."""
        return "POST", self.endpoint

    def lookup(self, kind: str, value: str) -> Finding:
        patterns = indicator_patterns(kind, value)
        data = self.search(kind, [value])
        return finding(kind, value, data, self.events(data, patterns, [value], kind))


def _graphql_error(errors: Any, response: httpx.Response) -> ProviderError:
    """Name the GraphQL errors (at most three); the token itself is never part of them."""
    if not isinstance(errors, list) or not errors:
        return ProviderError(NAME, f"answered without data: {short_body(response)}")
    parts: list[str] = []
    status: int | None = None
    auth = False
    for error in errors[:3]:
        if not isinstance(error, dict):
            parts.append(str(error)[:100])
            continue
        extensions = error.get("extensions")
        extensions = extensions if isinstance(extensions, dict) else {}
        details = extensions.get("data")
        details = details if isinstance(details, dict) else {}
        code = str(error.get("name") or extensions.get("code") or "error")
        parts.append(f"{code}: {str(error.get('message') or '')[:150]}")
        auth = auth or code in ("AUTH_REQUIRED", "FORBIDDEN_ACCESS")
        if status is None and isinstance(details.get("http_status"), int):
            status = details["http_status"]
    message = "GraphQL error " + "; ".join(parts)
    if auth:
        message += " (the API token is missing, wrong or lacks the rights)"
    return ProviderError(NAME, message, status=status)


# --- turning `data` into events -------------------------------------------------------------


def _nodes(connection: Any) -> list[dict[str, Any]]:
    """The nodes of a relay connection ({edges: [{node}]}), skipping anything malformed."""
    if not isinstance(connection, dict):
        return []
    edges = connection.get("edges")
    if not isinstance(edges, list):
        return []
    return [e["node"] for e in edges if isinstance(e, dict) and isinstance(e.get("node"), dict)]


def _number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None otherwise (bools included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # why: NaN would scramble the ranking


def _flag(value: Any) -> bool:
    """A boolean that may arrive stringified ("true") or null."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def parse_time(value: Any) -> datetime | None:
    """An OpenCTI timestamp (any ISO 8601 form, "Z" or offset) as aware UTC; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def rank_key(indicator: dict[str, Any], now: datetime | None = None) -> tuple[Any, ...]:
    """Sort key, best first: live, used for detection, higher score, higher confidence, not
    expired. A missing score or confidence ranks below any number; no valid_until never expires."""
    current = now or datetime.now(UTC)
    score = _number(indicator.get("x_opencti_score"))
    confidence = _number(indicator.get("confidence"))
    valid_until = parse_time(indicator.get("valid_until"))
    return (
        _flag(indicator.get("revoked")),
        not _flag(indicator.get("x_opencti_detection")),
        -(score if score is not None else -1.0),
        -(confidence if confidence is not None else -1.0),
        valid_until is not None and valid_until <= current,
    )


def ranked(indicators: Iterable[dict[str, Any]], now: datetime | None = None) -> list[dict]:
    current = now or datetime.now(UTC)
    return sorted(indicators, key=lambda i: rank_key(i, current))


def remove_empties(value: Any) -> Any:
    """Drop None, "", [] and {} at every depth (after cleaning); booleans and 0 are kept."""
    if isinstance(value, dict):
        cleaned = {k: remove_empties(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if not _empty(v)}
    if isinstance(value, list):
        return [v for v in (remove_empties(v) for v in value) if not _empty(v)]
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _simplify_common(entity: dict[str, Any]) -> None:
    """objectLabel → labels, externalReferences → URLs (OpenSearch-friendly flat lists)."""
    if "objectLabel" in entity:
        labels = entity.pop("objectLabel")
        entity["labels"] = [
            lab["value"] for lab in labels or [] if isinstance(lab, dict) and lab.get("value")
        ]
    if "externalReferences" in entity:
        entity["externalReferences"] = [
            n["url"] for n in _nodes(entity["externalReferences"]) if n.get("url")
        ]


def simplify_indicator(indicator: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(indicator)
    _simplify_common(result)
    if "killChainPhases" in result:
        phases = result["killChainPhases"]
        result["killChainPhases"] = [
            p["kill_chain_name"]
            for p in phases or []
            if isinstance(p, dict) and p.get("kill_chain_name")
        ]
    return result


def _link(base_url: str, what: str, entity_id: Any) -> str:
    return f"{base_url}/dashboard/observations/{what}/{entity_id}"


def _best_related(
    node: dict[str, Any], skip: set[Any], base_url: str, now: datetime
) -> dict[str, Any] | None:
    """The related name or address with the best indicator, unless that one was a direct hit."""
    candidates: list[dict[str, Any]] = []
    # StixFile and other types have no stixCoreRelationships: nothing related, no error.
    for rel in _nodes(node.get("stixCoreRelationships")):
        related = rel.get("related")
        if not isinstance(related, dict):
            continue
        indicators = ranked(_nodes(related.get("indicators")), now)
        if not indicators:
            continue
        best = simplify_indicator(indicators[0])
        candidates.append(
            {
                "id": related.get("id"),
                "type": rel.get("type"),
                "relationship": rel.get("relationship_type"),
                "value": related.get("value"),
                "indicator": best,
                "multipleIndicators": len(indicators) > 1,
                "indicator_link": _link(base_url, "indicators", best.get("id")),
            }
        )
    if not candidates:
        return None
    best_related = min(candidates, key=lambda c: rank_key(c["indicator"], now))
    return None if best_related["indicator"].get("id") in skip else best_related


def build_events(
    data: Any,
    patterns: list[str],
    values: list[str],
    *,
    query_key: str,
    base_url: str,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """wazuh-opencti's events for one GraphQL answer: the best direct indicator matches, then
    every observable carrying an indicator of its own or via a related name/address."""
    current = now or datetime.now(UTC)
    data = data if isinstance(data, dict) else {}
    base_url = base_url.rstrip("/")
    direct = ranked(_nodes(data.get("indicators")), current)
    direct_ids = {i.get("id") for i in direct}
    sent = set(patterns)
    events: list[dict[str, Any]] = []
    for indicator in direct[:MAX_INDICATOR_EVENTS]:
        events.append(
            {
                "indicator": simplify_indicator(indicator),
                "indicator_link": _link(base_url, "indicators", indicator.get("id")),
                "query_key": query_key,
                "query_values": ";".join(patterns),
                "event_type": "indicator_pattern_match"
                if indicator.get("pattern") in sent
                else "indicator_partial_pattern_match",
            }
        )
    for node in _nodes(data.get("stixCyberObservables")):
        own = [
            i
            for i in ranked(_nodes(node.get("indicators")), current)
            if i.get("id") not in direct_ids
        ]
        related = _best_related(node, direct_ids, base_url, current)
        if not own and related is None:
            continue  # known to OpenCTI, but nothing says it is bad
        event = copy.deepcopy(node)
        event.pop("indicators", None)
        event.pop("stixCoreRelationships", None)
        _simplify_common(event)
        best = simplify_indicator(own[0]) if own else None
        event.update(
            {
                "related": related,
                "query_key": query_key,
                "query_values": ";".join(values),
                "event_type": "observable_with_indicator"
                if own
                else "observable_with_related_indicator",
                "observable_link": _link(base_url, "observables", node.get("id")),
                "indicator": best,
                "multipleIndicators": len(own) > 1,
                "indicator_link": _link(base_url, "indicators", best.get("id")) if best else None,
            }
        )
        events.append(event)
    return [remove_empties(e) for e in events]


# --- the verdict ----------------------------------------------------------------------------


def _creator(indicator: dict[str, Any]) -> str | None:
    created_by = indicator.get("createdBy")
    if isinstance(created_by, dict) and created_by.get("name"):
        return str(created_by["name"])
    return None


def _describe(indicator: dict[str, Any]) -> str:
    score = _number(indicator.get("x_opencti_score"))
    details = [f"score {score:g}" if score is not None else "no score"]
    creator = _creator(indicator)
    if creator:
        details.append(creator)
    if _flag(indicator.get("revoked")):
        details.append("revoked")
    name = indicator.get("name") or indicator.get("pattern") or indicator.get("id")
    return f"indicator '{name}' ({', '.join(details)})"


def _score(indicator: dict[str, Any] | None) -> int | None:
    value = _number(indicator.get("x_opencti_score")) if indicator else None
    return None if value is None else max(0, min(100, round(value)))


def finding(kind: str, value: str, data: Any, events: list[dict[str, Any]]) -> Finding:
    """Map one search's `data` to a Finding; `events` go to `extra` untouched."""
    now = datetime.now(UTC)
    data = data if isinstance(data, dict) else {}
    direct = _nodes(data.get("indicators"))
    observables = _nodes(data.get("stixCyberObservables"))
    own: list[dict[str, Any]] = []
    related: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for node in observables:
        own += _nodes(node.get("indicators"))
        for rel in _nodes(node.get("stixCoreRelationships")):
            target = rel.get("related")
            if isinstance(target, dict):
                related += [(ind, rel, target) for ind in _nodes(target.get("indicators"))]
    # The same indicator often comes both directly and as the observable's own: count it once.
    unique: dict[Any, dict[str, Any]] = {}
    for indicator in direct + own:  # direct first: its node has the creator, the short one not
        unique.setdefault(indicator.get("id") or id(indicator), indicator)
    hits = list(unique.values())
    live_hits = ranked([i for i in hits if not _flag(i.get("revoked"))], now)
    live_related = [r for r in related if not _flag(r[0].get("revoked"))]
    live_related.sort(key=lambda r: rank_key(r[0], now))
    extra = {"events": events}
    found = bool(direct or observables)
    if not found:
        return Finding(
            NAME, kind, value, False, "unknown", None, "not known to OpenCTI", data, extra
        )
    others = len(live_hits) - 1
    if live_hits:
        best = live_hits[0]
        summary = _describe(best) + (f"; {others} more" if others > 0 else "")
        return Finding(NAME, kind, value, True, "malicious", _score(best), summary, data, extra)
    if live_related:
        ind, rel, target = live_related[0]
        summary = (
            f"{rel.get('relationship_type') or 'related to'} {rel.get('type') or 'observable'} "
            f"'{target.get('value')}' with {_describe(ind)}"
        )
        return Finding(NAME, kind, value, True, "suspicious", _score(ind), summary, data, extra)
    scored = [(s, o) for o in observables if (s := _number(o.get("x_opencti_score"))) is not None]
    worst_score, worst_node = max(scored, key=lambda p: p[0], default=(None, None))
    if worst_node is not None and worst_score is not None:
        label = f"{worst_node.get('type') or 'observable'} '{worst_node.get('observable_value')}'"
        if worst_score >= SUSPICIOUS_OBSERVABLE_SCORE:
            summary = f"observable {label} (score {worst_score:g}), no indicator"
            return Finding(
                NAME, kind, value, True, "suspicious", _score(worst_node), summary, data, extra
            )
    revoked = ranked(hits, now)
    if revoked:
        summary = f"only revoked indicators: {_describe(revoked[0])}"
    elif observables:
        first = observables[0]
        summary = f"observable {first.get('type') or ''} '{first.get('observable_value')}'"
        summary = " ".join(summary.split()) + ", no indicator"
    else:
        summary = "known to OpenCTI, no indicator"
    return Finding(NAME, kind, value, True, "unknown", None, summary, data, extra)
