"""A fake AbuseIPDB API v2, after external-apis.md §6.1 (wording marked [mem] there is a guess).

One route, under ``/api/v2`` (use ``fake.base_url``):

* ``GET /api/v2/check?ipAddress=…&maxAgeInDays=…&verbose`` with header ``Key``.

Checks in the order a gateway applies them: injected failures (``fail_next``), the key (401),
the daily quota (429), the query (422), then the answer. Every valid IP gets 200, as on the real
API: a known one with its record, an unknown one with score 0 and no reports. Reports older than
``maxAgeInDays`` are not counted and a record with none left in the window scores 0.
``countryName`` and ``reports`` are sent only with ``verbose``. Every answer carries
``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``; a 429 adds ``Retry-After`` (seconds to the
reset, by default the next midnight UTC) and ``X-RateLimit-Reset`` (epoch seconds).

Each authenticated request that is not refused for quota spends one of the key's ``quota``.

    with AbuseIPDBFake({"118.25.6.39": 100}) as fake:
        httpx.get(fake.base_url + "/check", params={"ipAddress": "118.25.6.39"},
                  headers={"Key": fake.api_key})
        assert fake.calls_for("118.25.6.39") == 1 and fake.remaining() == 999
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_API_KEY = "abuseipdb-test-key"
FREE_QUOTA = 1000  # checks per day on the free plan
PREFIX = "/api/v2"
DEFAULT_MAX_AGE = 30  # AbuseIPDB's default when maxAgeInDays is left out
AUTH_FAILED = (
    "Authentication failed. Your API key is either missing, incorrect, or revoked. "
    "Note: The APIv2 key differs from the APIv1 key."
)
INVALID_IP = (
    "The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or 2001:4860:4860::8888)."
)
MISSING_IP = "The ip address field is required."
BAD_MAX_AGE = "The max age in days must be between 1 and 365."


def quota_message(limit: int) -> str:
    return (
        f"Daily rate limit of {limit} requests exceeded for this endpoint. "
        "See headers for additional details."
    )


@dataclass(frozen=True)
class Report:
    """One abuse report; `age` is how long before the request it was made."""

    age: timedelta = timedelta(days=1)
    comment: str = "Dec 20 20:55:14 srv206 sshd[13937]: Invalid user oracle from 118.25.6.39"
    categories: tuple[int, ...] = (18, 22)
    reporter_id: int = 1
    reporter_country_code: str = "US"
    reporter_country_name: str = "United States"


@dataclass(frozen=True)
class IPRecord:
    """What the fake knows of one IP; defaults are the documented example (118.25.6.39)."""

    score: int = 100
    reports: tuple[Report, ...] = (Report(),)
    is_whitelisted: bool = False
    country_code: str | None = "CN"
    country_name: str | None = "China"
    usage_type: str | None = "Data Center/Web Hosting/Transit"
    isp: str | None = "Tencent Cloud Computing (Beijing) Co. Ltd"
    domain: str | None = "tencent.com"
    hostnames: tuple[str, ...] = ()
    is_tor: bool = False


def _error(status: int, detail: str, parameter: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"detail": detail, "status": status}
    if parameter:
        error["source"] = {"parameter": parameter}
    return {"errors": [error]}


def _stamp(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat()


def check_data(
    ip: str, record: IPRecord | None, max_age: int, verbose: bool, now: datetime
) -> dict[str, Any]:
    """The 200 body's `data` for `ip` (None: an address nobody reported)."""
    address = ipaddress.ip_address(ip)
    known = record or IPRecord(
        score=0,
        reports=(),
        country_code=None,
        country_name=None,
        usage_type=None,
        isp=None,
        domain=None,
    )
    window = [r for r in known.reports if r.age <= timedelta(days=max_age)]
    window.sort(key=lambda r: r.age)  # newest first, as AbuseIPDB lists them
    data: dict[str, Any] = {
        "ipAddress": str(address),
        "isPublic": address.is_global,
        "ipVersion": address.version,
        "isWhitelisted": known.is_whitelisted,
        "abuseConfidenceScore": known.score if window else 0,
        "countryCode": known.country_code,
        "usageType": known.usage_type,
        "isp": known.isp,
        "domain": known.domain,
        "hostnames": list(known.hostnames),
        "isTor": known.is_tor,
        "totalReports": len(window),
        "numDistinctUsers": len({r.reporter_id for r in window}),
        "lastReportedAt": _stamp(now - window[0].age) if window else None,
    }
    if verbose:
        data["countryName"] = known.country_name
        data["reports"] = [
            {
                "reportedAt": _stamp(now - r.age),
                "comment": r.comment,
                "categories": list(r.categories),
                "reporterId": r.reporter_id,
                "reporterCountryCode": r.reporter_country_code,
                "reporterCountryName": r.reporter_country_name,
            }
            for r in window
        ]
    return data


def _record(value: IPRecord | int | Mapping[str, Any]) -> IPRecord:
    if isinstance(value, IPRecord):
        return value
    if isinstance(value, int):
        return IPRecord(score=value)
    fields = dict(value)
    for key in ("reports", "hostnames"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return IPRecord(**fields)


def _normal(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return ip


class AbuseIPDBFake(FakeServer):
    """`ips` maps IP → IPRecord, a bare score, or IPRecord's fields as a dict."""

    name = "abuseipdb-fake"

    def __init__(
        self,
        ips: Mapping[str, IPRecord | int | Mapping[str, Any]] | None = None,
        *,
        api_key: str = DEFAULT_API_KEY,
        quota: int = FREE_QUOTA,
        reset_after: float | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.quota = quota
        self.reset_after = reset_after  # seconds to the quota reset; None: next midnight UTC
        self.now = now
        self.used = 0
        self.records: dict[str, IPRecord] = {}
        self._failures: deque[tuple[int, float | None]] = deque()
        for ip, record in (ips or {}).items():
            self.add_ip(ip, record)

    @property
    def base_url(self) -> str:
        return self.url + PREFIX

    # --- configuration ---------------------------------------------------------------------

    def add_ip(
        self, ip: str, record: IPRecord | int | Mapping[str, Any] = 100, /, **changes: Any
    ) -> IPRecord:
        """Add or replace what the fake knows of `ip`; keyword arguments change single fields."""
        rec = replace(_record(record), **changes) if changes else _record(record)
        with self._lock:
            self.records[str(ipaddress.ip_address(ip))] = rec
        return rec

    def forget_ip(self, ip: str) -> None:
        with self._lock:
            self.records.pop(_normal(ip), None)

    def fail_next(
        self, count: int = 1, status: int = 500, retry_after: float | None = None
    ) -> None:
        """Answer the next `count` requests with `status` (429: with `retry_after` if given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def remaining(self) -> int:
        with self._lock:
            return max(self.quota - self.used, 0)

    def reset_quota(self) -> None:
        """A new day: the quota is whole again."""
        with self._lock:
            self.used = 0

    # --- counters --------------------------------------------------------------------------

    def calls_for(self, ip: str) -> int:
        """Requests that asked about `ip`, whatever their answer."""
        wanted = _normal(ip)
        with self._lock:
            return sum(1 for r in self.requests if _asked(r.request) == wanted)

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests]

    # --- the API ---------------------------------------------------------------------------

    def _seconds_to_reset(self) -> float:
        if self.reset_after is not None:
            return self.reset_after
        now = self.now()
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - now).total_seconds()

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.quota), "X-RateLimit-Remaining": str(remaining)}

    def _too_many(self, retry_after: float) -> Reply:
        headers = self._limit_headers(max(self.quota - self.used, 0))
        headers["Retry-After"] = str(math.ceil(retry_after))
        headers["X-RateLimit-Reset"] = str(math.ceil(self.now().timestamp() + retry_after))
        return Reply(429, _error(429, quota_message(self.quota)), headers)

    def handle(self, request: FakeRequest) -> Reply:
        with self._lock:
            remaining = max(self.quota - self.used, 0)
            if self._failures:
                status, retry_after = self._failures.popleft()
                if status == 429:
                    return self._too_many(
                        self._seconds_to_reset() if retry_after is None else retry_after
                    )
                return Reply(status, _error(status, "Server Error"), self._limit_headers(remaining))
            if request.path.rstrip("/") != PREFIX + "/check":
                return Reply(404, _error(404, "Not Found"), self._limit_headers(remaining))
            if request.method != "GET":
                return Reply(405, _error(405, "Method Not Allowed"), self._limit_headers(remaining))
            if request.headers.get("key") != self.api_key:
                return Reply(401, _error(401, AUTH_FAILED), self._limit_headers(self.quota))
            if self.used >= self.quota:
                return self._too_many(self._seconds_to_reset())
            self.used += 1
            headers = self._limit_headers(self.quota - self.used)
            query = parse_qs(request.query, keep_blank_values=True)
            ip = (query.get("ipAddress") or [""])[0].strip()
            if not ip:
                return Reply(422, _error(422, MISSING_IP, "ipAddress"), headers)
            try:
                address = str(ipaddress.ip_address(ip))
            except ValueError:
                return Reply(422, _error(422, INVALID_IP, "ipAddress"), headers)
            raw_age = (query.get("maxAgeInDays") or [str(DEFAULT_MAX_AGE)])[0]
            try:
                max_age = int(raw_age)
            except ValueError:
                max_age = 0
            if not 1 <= max_age <= 365:
                return Reply(422, _error(422, BAD_MAX_AGE, "maxAgeInDays"), headers)
            record = self.records.get(address)
        data = check_data(address, record, max_age, "verbose" in query, self.now())
        return Reply(200, {"data": data}, headers)


def _asked(request: FakeRequest) -> str | None:
    values: Iterable[str] = parse_qs(request.query, keep_blank_values=True).get("ipAddress", [])
    for value in values:
        return _normal(value)
    return None
