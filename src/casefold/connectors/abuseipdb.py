"""AbuseIPDB v2: GET /check?ipAddress=…&maxAgeInDays=…&verbose with the `Key` header.

AbuseIPDB answers 200 for every valid IP, known or not, so "not known" is read from the body: an
address nobody reported within `max_age_days` is a negative answer (found False, "unknown"), not a
clean one, because absence of reports says nothing about intent. A whitelisted address is "clean"
whatever its score: AbuseIPDB whitelists well-known infrastructure (public resolvers, big
crawlers) whose reports are mostly mistaken. Otherwise the abuse confidence score decides: 75 and
up is malicious, 25 and up suspicious, lower (reported, but weakly) stays "unknown".

Errors come as `{"errors": [{"detail", "status", "source"}]}`: 401 is a bad key, 422 a value
AbuseIPDB refuses (not an IP, maxAgeInDays out of range); neither is worth retrying. A spent daily
quota is a 429 with a Retry-After until midnight UTC, which the HTTP layer turns into
QuotaExceeded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from casefold.connectors.finding import Finding
from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    json_object,
    refused,
    short_body,
)

DEFAULT_BASE_URL = "https://api.abuseipdb.com/api/v2"
NAME = "abuseipdb"
MALICIOUS_FROM = 75
SUSPICIOUS_FROM = 25


class AbuseIPDB:
    name = NAME
    kinds = frozenset({"ip"})

    def __init__(
        self, http: ProviderHTTP, base_url: str, api_key: str, *, max_age_days: int = 90
    ) -> None:
        if not 1 <= max_age_days <= 365:  # AbuseIPDB answers 422 outside this range
            raise ValueError(f"max_age_days must be between 1 and 365, got {max_age_days}")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.max_age_days = max_age_days

    def check(self, ip: str) -> dict[str, Any]:
        """AbuseIPDB's `data` object for `ip`, with the reports (verbose)."""
        query = urlencode({"ipAddress": ip.strip(), "maxAgeInDays": self.max_age_days})
        # `verbose` is a bare flag in AbuseIPDB's documentation; written by hand because
        # httpx would send it as `verbose=`.
        response = self.http.request(
            "GET",
            f"{self.base_url}/check?{query}&verbose",
            headers={"Key": self.api_key, "Accept": "application/json"},
        )
        if response.status_code != 200:
            raise self._error(response)
        return json_object(NAME, response, "data")

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """The request a lookup would send (for dry runs)."""
        return "GET", f"{self.base_url}/check?ipAddress={value}&maxAgeInDays={self.max_age_days}"

    def lookup(self, kind: str, value: str) -> Finding:
        if kind not in self.kinds:
            raise ValueError(f"{NAME} looks up IP addresses only, not {kind!r}")
        return finding(value, self.check(value), self.max_age_days)

    def _error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        hint = "the request was refused" if status == 422 else ""
        return refused(NAME, status, _detail(response), secret=self.api_key, hint=hint)


def _detail(response: httpx.Response) -> str:
    """The `detail` of AbuseIPDB's error envelope, or the start of whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        return short_body(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    details = [str(e["detail"]) for e in errors or [] if isinstance(e, dict) and e.get("detail")]
    return "; ".join(details) if details else short_body(response)


def finding(ip: str, data: dict[str, Any], max_age_days: int = 90) -> Finding:
    raw_score = data.get("abuseConfidenceScore")
    score = max(0, min(100, int(raw_score))) if isinstance(raw_score, int | float) else 0
    reports = data.get("totalReports")
    reports = int(reports) if isinstance(reports, int | float) else 0
    whitelisted = bool(data.get("isWhitelisted"))
    if whitelisted:
        verdict = "clean"
    elif reports == 0:
        # Nothing reported in the window: a negative answer, scored as "no evidence".
        summary = f"no reports in the last {max_age_days} days" + _context(data)
        return Finding(NAME, "ip", ip, False, "unknown", None, summary, data)
    elif score >= MALICIOUS_FROM:
        verdict = "malicious"
    elif score >= SUSPICIOUS_FROM:
        verdict = "suspicious"
    else:
        verdict = "unknown"
    parts = [f"confidence {score}", f"{reports} report(s)"]
    users = data.get("numDistinctUsers")
    if isinstance(users, int) and users and users != reports:
        parts[-1] += f" from {users} user(s)"
    summary = ", ".join(parts) + _context(data)
    if whitelisted:
        summary += ", whitelisted"
    return Finding(NAME, "ip", ip, True, verdict, score, summary, data)


def _context(data: dict[str, Any]) -> str:
    """What the IP is, as ", CN, Tencent Cloud …, Data Center/Web Hosting/Transit"."""
    parts = [
        str(data[k]) for k in ("countryCode", "isp", "usageType") if data.get(k) not in (None, "")
    ]
    if data.get("isTor"):
        parts.append("Tor exit node")
    return "".join(f", {p}" for p in parts)
