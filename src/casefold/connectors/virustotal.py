"""VirusTotal API v3: one GET per observable with the `x-apikey` header.

    hash   → /files/{md5|sha1|sha256}
    ip     → /ip_addresses/{ip}
    domain → /domains/{domain}
    url    → /urls/{id}, id = the URL in URL-safe base64 without "=" padding (VT's identifier)

The verdict is read from `last_analysis_stats`, the engines' votes on the last analysis: three or
more "malicious" engines make it malicious (one or two are often false positives), one malicious
or two suspicious make it suspicious, otherwise any "harmless" vote makes it clean. The score is
the share of malicious votes among the engines that gave a verdict (malicious, suspicious,
harmless, undetected); engines that timed out, failed or do not handle the type are left out of
both the score and the summary's "n/m engines", so the two agree.

404 `NotFoundError` means VirusTotal has never seen the observable: a negative answer. So is an
object no engine has analysed yet (VT knows every IP, but often without any verdict): found is
False so it is cached for the shorter negative TTL and asked again sooner. Errors come as
`{"error": {"code", "message"}}`; a spent quota is a 429 `QuotaExceededError` without
Retry-After, which the HTTP layer reports as QuotaExceeded.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from casefold.connectors.finding import Finding
from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    json_object,
    refused,
    short_body,
)

DEFAULT_BASE_URL = "https://www.virustotal.com/api/v3"
NAME = "virustotal"
_COLLECTIONS = {"hash": "files", "ip": "ip_addresses", "domain": "domains", "url": "urls"}
_VOTING = ("malicious", "suspicious", "harmless", "undetected")
_AUTH_CODES = {"WrongCredentialsError", "AuthenticationRequiredError", "UserNotActiveError"}


def url_id(url: str) -> str:
    """VirusTotal's identifier of a URL: URL-safe base64 of its bytes, "=" padding removed."""
    return base64.urlsafe_b64encode(url.encode()).decode("ascii").rstrip("=")


class VirusTotal:
    name = NAME
    kinds = frozenset(_COLLECTIONS)

    def __init__(self, http: ProviderHTTP, base_url: str, api_key: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def path(self, kind: str, value: str) -> str:
        """The object's path under the base URL, e.g. /files/<sha256>."""
        if kind not in _COLLECTIONS:
            raise ValueError(f"{NAME} does not look up {kind!r} values")
        text = value.strip()
        if kind == "url":
            ident = url_id(text)
        else:
            # IPv6 colons are legal in a path segment; anything else odd is escaped.
            ident = quote(text.lower() if kind == "hash" else text, safe=":")
        return f"/{_COLLECTIONS[kind]}/{ident}"

    def get(self, kind: str, value: str) -> dict[str, Any] | None:
        """VT's `data` object for the observable; None when VirusTotal does not know it."""
        response = self.http.request(
            "GET",
            self.base_url + self.path(kind, value),
            headers={"x-apikey": self.api_key, "Accept": "application/json"},
        )
        if response.status_code == 404 and _code(response) in ("NotFoundError", None):
            return None
        if response.status_code != 200:
            raise self._error(response)
        return json_object(NAME, response, "data")

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """The request a lookup would send (for dry runs)."""
        return "GET", self.base_url + self.path(kind, value)

    def lookup(self, kind: str, value: str) -> Finding:
        return finding(kind, value, self.get(kind, value))

    def _error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        code, text = _envelope(response)
        hint = ""
        if status == 401 or code in _AUTH_CODES:
            hint = "check the API key"
        elif status == 403:
            hint = "the API key lacks the privilege for this call"
        detail = f"{code}: {text}" if code else text
        return refused(NAME, status, detail, secret=self.api_key, hint=hint)


def _envelope(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, short_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, short_body(response)
    code = error.get("code")
    return (str(code) if code else None), str(error.get("message") or short_body(response))


def _code(response: httpx.Response) -> str | None:
    return _envelope(response)[0]


def _count(stats: dict[str, Any], key: str) -> int:
    value = stats.get(key)
    return int(value) if isinstance(value, int | float) else 0


def verdict_of(stats: dict[str, Any]) -> str:
    malicious, suspicious = _count(stats, "malicious"), _count(stats, "suspicious")
    if malicious >= 3:
        return "malicious"
    if malicious >= 1 or suspicious >= 2:
        return "suspicious"
    if _count(stats, "harmless") > 0:
        return "clean"
    return "unknown"


def finding(kind: str, value: str, data: dict[str, Any] | None) -> Finding:
    if data is None:
        return Finding(NAME, kind, value, False, "unknown", None, "not known to VirusTotal")
    attributes = data.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    stats = attributes.get("last_analysis_stats")
    stats = stats if isinstance(stats, dict) else {}
    malicious = _count(stats, "malicious")
    voted = sum(_count(stats, k) for k in _VOTING)
    context = _context(kind, attributes)
    if voted == 0:
        summary = "; ".join(["no engine has analysed it yet", *context])
        return Finding(NAME, kind, value, False, "unknown", None, summary, data)
    verdict = verdict_of(stats)
    score = round(100 * malicious / voted)
    head = f"{malicious}/{voted} engines: malicious"
    suspicious = _count(stats, "suspicious")
    if suspicious:
        head += f", {suspicious} suspicious"
    return Finding(NAME, kind, value, True, verdict, score, "; ".join([head, *context]), data)


def _context(kind: str, attributes: dict[str, Any]) -> list[str]:
    """What VT says the object is, for the summary: threat label and name, AS, registrar…"""
    parts: list[str] = []
    popular = attributes.get("popular_threat_classification")
    label = popular.get("suggested_threat_label") if isinstance(popular, dict) else None
    if label:
        parts.append(str(label))
    if kind == "hash" and attributes.get("meaningful_name"):
        parts.append(str(attributes["meaningful_name"]))
    elif kind == "ip":
        owner = attributes.get("as_owner")
        where = [str(attributes[k]) for k in ("country",) if attributes.get(k)]
        if owner:
            asn = attributes.get("asn")
            where.insert(0, f"AS{asn} {owner}" if asn else str(owner))
        parts.extend(where)
    elif kind == "domain" and attributes.get("registrar"):
        parts.append(f"registrar {attributes['registrar']}")
    elif kind == "url":
        final = attributes.get("last_final_url")
        if final and final != attributes.get("url"):
            parts.append(f"redirects to {final}")
        if attributes.get("title"):
            parts.append(str(attributes["title"]))
    return parts
