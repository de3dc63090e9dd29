"""MISP: POST /attributes/restSearch with the bare auth key in `Authorization` (no "Bearer").

One search per observable, restricted to the MISP attribute types that can hold it (a hash's type
follows from its length; `filename|<hash>` is searched too, since file objects in events often
carry the hash that way). Every attribute is searched, whether or not it is flagged for IDS: an
IoC flagged `to_ids` is one the event's author vouches for as detection-worthy, so any such
attribute makes the verdict malicious; matches that are only context (to_ids false) make it
suspicious. Values on MISP's warninglists (public resolvers, top sites…) are dropped by MISP itself
(`enforceWarninglist`), so they come back as "not found". MISP has no score of its own: the score
is left empty rather than invented.

Only the first page (50 attributes) is read: enough for a verdict and a summary; the summary says
"50+" when there may be more. MISP sends no quota signal; its 403 body is
`{"name", "message", "url"}`.
"""

from __future__ import annotations

from typing import Any

import httpx

from casefold.connectors.finding import Finding
from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    json_body,
    refused,
    short_body,
)

NAME = "misp"
PAGE_SIZE = 50
_HASH_TYPES = {32: "md5", 40: "sha1", 64: "sha256"}
_TYPES = {"ip": ["ip-dst", "ip-src"], "domain": ["domain", "hostname"], "url": ["url", "link"]}
_SHOWN_EVENTS = 3
_SHOWN_TAGS = 5


def attribute_types(kind: str, value: str) -> list[str]:
    """The MISP attribute types searched for an observable of `kind`."""
    if kind == "hash":
        algorithm = _HASH_TYPES.get(len(value.strip()))
        if algorithm is None:
            raise ValueError(f"{value!r} is not an MD5, SHA-1 or SHA-256")
        return [algorithm, f"filename|{algorithm}"]
    if kind not in _TYPES:
        raise ValueError(f"{NAME} does not look up {kind!r} values")
    return list(_TYPES[kind])


class MISP:
    name = NAME
    kinds = frozenset({"ip", "hash", "domain", "url"})

    def __init__(self, http: ProviderHTTP, base_url: str, api_key: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def query(self, kind: str, value: str) -> dict[str, Any]:
        """The restSearch body sent for one observable."""
        text = value.strip()
        return {
            "returnFormat": "json",
            "value": text.lower() if kind == "hash" else text,
            "type": attribute_types(kind, text),
            "enforceWarninglist": True,
            "includeEventTags": True,
            "limit": PAGE_SIZE,
            "page": 1,
        }

    def search(self, kind: str, value: str) -> list[dict[str, Any]]:
        """The attributes matching the observable (first page)."""
        response = self.http.request(
            "POST",
            f"{self.base_url}/attributes/restSearch",
            headers={
                "Authorization": self.api_key,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            json=self.query(kind, value),
        )
        if response.status_code != 200:
            raise self._error(response)
        body = json_body(NAME, response)
        found = body.get("response") if isinstance(body, dict) else None
        if isinstance(found, dict):
            attributes = found.get("Attribute", [])
        elif found == []:  # some MISP versions answer an empty search this way
            attributes = []
        else:
            attributes = None
        if not isinstance(attributes, list):
            raise ProviderError(
                NAME, f"answered 200 without an attribute list: {short_body(response)}", status=200
            )
        return [a for a in attributes if isinstance(a, dict)]

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """The request a lookup would send (for dry runs)."""
        return "POST", f"{self.base_url}/attributes/restSearch"

    def lookup(self, kind: str, value: str) -> Finding:
        return finding(kind, value, self.search(kind, value))

    def _error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        if 300 <= status < 400:
            where = response.headers.get("location", "elsewhere")
            return refused(
                NAME,
                status,
                f"a redirect to {where}",
                secret=self.api_key,
                hint="check the base URL and the API key",
            )
        return refused(NAME, status, _detail(response), secret=self.api_key)


def _detail(response: httpx.Response) -> str:
    """MISP's error `name` (its sentence) or `message`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return short_body(response)
    if isinstance(body, dict):
        for key in ("name", "message"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    return short_body(response)


def finding(kind: str, value: str, attributes: list[dict[str, Any]]) -> Finding:
    if not attributes:
        return Finding(NAME, kind, value, False, "unknown", None, "not in MISP", {"Attribute": []})
    for_ids = sum(1 for a in attributes if _flag(a.get("to_ids")))
    events: dict[str, str] = {}
    tags: dict[str, None] = {}  # ordered set
    for attribute in attributes:
        event = attribute.get("Event") if isinstance(attribute.get("Event"), dict) else {}
        event_id = str(attribute.get("event_id") or event.get("id") or "?")
        events.setdefault(event_id, str(event.get("info") or f"event {event_id}"))
        for tag in [*(attribute.get("Tag") or []), *(event.get("Tag") or [])]:
            if isinstance(tag, dict) and tag.get("name"):
                tags.setdefault(str(tag["name"]))
    count = f"{len(attributes)}+" if len(attributes) >= PAGE_SIZE else str(len(attributes))
    head = f"{count} attribute(s) in {len(events)} event(s)"
    infos = list(dict.fromkeys(events.values()))
    parts = infos[:_SHOWN_EVENTS] + (["…"] if len(infos) > _SHOWN_EVENTS else [])
    names = list(tags)
    if names:
        parts.append(", ".join(names[:_SHOWN_TAGS]) + (", …" if len(names) > _SHOWN_TAGS else ""))
    if not for_ids:
        parts.append("none flagged for IDS")
    verdict = "malicious" if for_ids else "suspicious"
    summary = f"{head}: " + "; ".join(parts)
    return Finding(NAME, kind, value, True, verdict, None, summary, {"Attribute": attributes})


def _flag(value: Any) -> bool:
    """MISP booleans arrive as true/false, 1/0 or "1"/"0" depending on version."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)
