"""A fake CrowdSec CTI smoke API, faithful to what external-apis.md §2.1 documents.

Routes (everything else is 404, any method but GET is 405):

* ``GET /v2/smoke/{ip}`` with header ``x-api-key``:
  403 ``{"message": "Forbidden"}`` for a missing or wrong key;
  429 once the key's daily quota is spent (bare: no Retry-After, no X-RateLimit-*);
  400 ``{"message": …}`` for a malformed IP;
  404 ``{"message": "IP address information not found"}`` for an IP not in the table;
  200 and a full smoke item for a known IP. Each 200 consumes one token of the key's quota.
* ``GET /v2/smoke?ips=a,b`` (batch): 400 without ``ips`` or with a malformed one, else
  200 ``{"total", "not_found", "items"}``. Each returned item consumes one token; a batch whose
  items outnumber the tokens left is refused with 429.

Checks run in the order an API gateway applies them: key (403), quota (429), request (400),
lookup (404/200). The 400 wording is not documented by CrowdSec; the others are.

Use it as a real server on 127.0.0.1, or without a socket through ``transport()``::

    with CrowdSecFake({"1.2.3.4": IPProfile("malicious", behaviors=("ssh:bruteforce",))}) as cti:
        httpx.get(f"{cti.url}/v2/smoke/1.2.3.4", headers={"x-api-key": cti.api_key})
        assert cti.calls_for("1.2.3.4") == 1 and cti.remaining() == 49

    client = httpx.Client(transport=CrowdSecFake(...).transport())  # base URL: any host
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_API_KEY = "cti-test-key"
COMMUNITY_QUOTA = 50  # tokens per day for a community key
NOT_FOUND = {"message": "IP address information not found"}

# behavior name → (label, description, MITRE technique, scenario that reports it)
BEHAVIORS: dict[str, tuple[str, str, str, str]] = {
    "ssh:bruteforce": (
        "SSH Bruteforce",
        "IP has been reported for performing brute force on ssh services.",
        "T1110",
        "crowdsecurity/ssh-bf",
    ),
    "http:scan": (
        "HTTP Scan",
        "IP has been reported for performing actions related to HTTP vulnerability scanning "
        "and discovery.",
        "T1595",
        "crowdsecurity/http-probing",
    ),
    "http:exploit": (
        "HTTP Exploit",
        "IP has been reported for attempting to exploit a vulnerability in a web application.",
        "T1190",
        "crowdsecurity/http-cve-probing",
    ),
    "http:bruteforce": (
        "HTTP Bruteforce",
        "IP has been reported for performing a HTTP brute force attack (either generic HTTP "
        "probing or applicative related brute force).",
        "T1110",
        "crowdsecurity/http-bf-wordpress_bf",
    ),
    "tcp:scan": (
        "TCP Scan",
        "IP has been reported for performing TCP port scanning.",
        "T1595",
        "crowdsecurity/iptables-scan-multi_ports",
    ),
    "smb:bruteforce": (
        "SMB Bruteforce",
        "IP has been reported for performing brute force on samba services.",
        "T1110",
        "crowdsecurity/smb-bf",
    ),
}
MITRE: dict[str, tuple[str, str]] = {
    "T1110": (
        "Brute Force",
        "Adversaries may use brute force techniques to gain access to accounts when passwords "
        "are unknown or when password hashes are obtained.",
    ),
    "T1595": (
        "Active Scanning",
        "Adversaries may execute active reconnaissance scans to gather information that can be "
        "used during targeting.",
    ),
    "T1190": (
        "Exploit Public-Facing Application",
        "Adversaries may attempt to exploit a weakness in an Internet-facing host or system to "
        "initially access a network.",
    ),
}
SCENARIOS: dict[str, tuple[str, str]] = {
    "crowdsecurity/ssh-bf": ("SSH Bruteforce", "Detect ssh bruteforce"),
    "crowdsecurity/http-probing": ("HTTP Probing", "Detect site scanning/probing from a single ip"),
    "crowdsecurity/http-cve-probing": ("HTTP CVE Probing", "Detect generic HTTP exploit attempts"),
    "crowdsecurity/http-bf-wordpress_bf": ("WordPress Bruteforce", "Detect WordPress bruteforce"),
    "crowdsecurity/iptables-scan-multi_ports": (
        "Port Scan",
        "Detect tcp port scan from a single ip",
    ),
    "crowdsecurity/smb-bf": ("SMB Bruteforce", "Detect smb bruteforce"),
}
FALSE_POSITIVES: dict[str, tuple[str, str]] = {
    "seo:crawler": ("SEO crawler", "IP belongs to a known SEO crawler"),
    "cdn:cloudflare": ("Cloudflare CDN", "IP belongs to the Cloudflare CDN"),
    "msp:scanner": ("Known security scanner", "IP belongs to a known Internet-wide scanner"),
}
# reputation → (confidence, aggressiveness, threat, trust, anomaly, total, range score)
_BY_REPUTATION: dict[str, tuple[str, int, int, int, int, int, int]] = {
    "malicious": ("high", 5, 4, 4, 1, 4, 5),
    "suspicious": ("medium", 3, 2, 2, 1, 2, 3),
    "known": ("low", 1, 1, 1, 0, 1, 1),
    "safe": ("high", 0, 0, 5, 0, 0, 0),
    "benign": ("high", 0, 0, 4, 0, 0, 0),
    "unknown": ("none", 0, 0, 0, 0, 0, 0),
}
_NOISE_SCORE = {"high": 10, "medium": 6, "low": 2, "none": 0}


def _range_reputation(score: int) -> str:
    return ("unknown", "known", "suspicious", "suspicious", "malicious", "malicious")[score]


@dataclass(frozen=True)
class IPProfile:
    """What the fake knows of one IP; `smoke_item` turns it into the API's JSON."""

    reputation: str = "malicious"
    behaviors: tuple[str, ...] = ("ssh:bruteforce",)
    confidence: str | None = None  # None: derived from the reputation
    background_noise: str = "low"
    as_name: str | None = "EXAMPLE-AS"
    as_num: int | None = 64500
    reverse_dns: str | None = None
    country: str | None = "FR"
    city: str | None = "Paris"
    latitude: float | None = 48.8566
    longitude: float | None = 2.3522
    first_seen: datetime = datetime(2022, 5, 28, 16, 0, tzinfo=UTC)
    last_seen: datetime = datetime(2023, 10, 15, 5, 45, tzinfo=UTC)
    blocklisted: bool | None = None  # None: in the community blocklist iff malicious
    false_positives: tuple[str, ...] = ()
    cves: tuple[str, ...] = ()
    target_countries: Mapping[str, int] = field(
        default_factory=lambda: {"DE": 79, "FI": 12, "CA": 4, "AU": 2, "FR": 2, "US": 1}
    )
    references: tuple[str, ...] = ()  # blocklist names, e.g. "crowdsec_high_background_noise"
    extra: Mapping[str, Any] = field(default_factory=dict)  # top-level keys set (or replaced) last


def _entry(name: str, catalogue: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    label, description = catalogue.get(name, (name, name))[:2]
    return {"name": name, "label": label, "description": description}


def smoke_item(ip: str, profile: IPProfile) -> dict[str, Any]:
    """The 200 body for `ip`: every field of the documented example, derived from `profile`."""
    address = ipaddress.ip_address(ip)
    if profile.reputation not in _BY_REPUTATION:
        raise ValueError(f"unknown reputation {profile.reputation!r}")
    confidence, aggr, threat, trust, anomaly, total, range_score = _BY_REPUTATION[
        profile.reputation
    ]
    if address.version == 4:
        range_24: str | None = str(ipaddress.ip_network(f"{address}/24", strict=False))
        ip_range = range_24
    else:
        range_24 = None
        ip_range = str(ipaddress.ip_network(f"{address}/64", strict=False))
    behaviors = [
        {"name": b, "label": BEHAVIORS[b][0], "description": BEHAVIORS[b][1]}
        if b in BEHAVIORS
        else {"name": b, "label": b, "description": b}
        for b in profile.behaviors
    ]
    techniques = list(dict.fromkeys(BEHAVIORS[b][2] for b in profile.behaviors if b in BEHAVIORS))
    scenarios = list(dict.fromkeys(BEHAVIORS[b][3] for b in profile.behaviors if b in BEHAVIORS))
    blocklisted = (
        profile.reputation == "malicious" if profile.blocklisted is None else profile.blocklisted
    )
    classifications = (
        [
            {
                "name": "community-blocklist",
                "label": "CrowdSec Community Blocklist",
                "description": "IP belongs to the CrowdSec Community Blocklist",
            }
        ]
        if blocklisted
        else []
    )
    days = (profile.last_seen.date() - profile.first_seen.date()).days
    scores = {"aggressiveness": aggr, "threat": threat, "trust": trust, "anomaly": anomaly}
    quiet = {"aggressiveness": 0, "threat": 0, "trust": 0, "anomaly": 0, "total": 0}
    refs = list(profile.references)
    if profile.background_noise == "high" and "crowdsec_high_background_noise" not in refs:
        refs.append("crowdsec_high_background_noise")
    item: dict[str, Any] = {
        "ip": str(address),
        "ip_range": ip_range,
        "ip_range_score": range_score,
        "ip_range_24": range_24,
        "ip_range_24_reputation": _range_reputation(max(range_score - 1, 0)) if range_24 else None,
        "ip_range_24_score": max(range_score - 1, 0) if range_24 else None,
        "reputation": profile.reputation,
        "confidence": profile.confidence or confidence,
        "background_noise": profile.background_noise,
        "background_noise_score": _NOISE_SCORE.get(profile.background_noise, 0),
        "as_name": profile.as_name,
        "as_num": profile.as_num,
        "reverse_dns": profile.reverse_dns,
        "location": {
            "country": profile.country,
            "city": profile.city,
            "latitude": profile.latitude,
            "longitude": profile.longitude,
        },
        "behaviors": behaviors,
        "history": {
            "first_seen": profile.first_seen.isoformat(),
            "last_seen": profile.last_seen.isoformat(),
            "full_age": days + 2,
            "days_age": days,
        },
        "classifications": {
            "false_positives": [_entry(n, FALSE_POSITIVES) for n in profile.false_positives],
            "classifications": classifications,
        },
        "attack_details": [{**_entry(s, SCENARIOS), "references": []} for s in scenarios],
        "target_countries": dict(profile.target_countries),
        "mitre_techniques": [_entry(t, MITRE) for t in techniques],
        "cves": list(profile.cves),
        "scores": {
            "overall": {**scores, "total": total},
            "last_day": quiet,
            "last_week": {**scores, "total": total},
            "last_month": {**scores, "total": total},
        },
        "references": [
            {
                "name": f"list:{name}",
                "label": name.replace("_", " ").title(),
                "description": f"Contains IPs listed in {name}",
            }
            for name in refs
        ],
    }
    item.update(profile.extra)
    return item


@dataclass(frozen=True)
class Request:
    """One request the fake answered."""

    method: str
    path: str
    ips: tuple[str, ...]  # as written in the request (the path's IP, or the batch's list)
    api_key: str | None
    status: int


def _profile(value: IPProfile | str | Mapping[str, Any]) -> IPProfile:
    if isinstance(value, IPProfile):
        return value
    if isinstance(value, str):
        return IPProfile(reputation=value)
    fields = dict(value)
    for key in ("behaviors", "false_positives", "cves", "references"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return IPProfile(**fields)


def _normal(ip: str) -> str:
    return str(ipaddress.ip_address(ip))


class CrowdSecFake(FakeServer):
    """The fake. `ips` maps IP → IPProfile, a reputation string, or IPProfile's fields as a dict.

    `lookups` records every smoke request (IPs asked, key, status); `requests` (from FakeServer)
    the raw HTTP requests served over the socket."""

    name = "crowdsec-fake"

    def __init__(
        self,
        ips: Mapping[str, IPProfile | str | Mapping[str, Any]] | None = None,
        *,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        quota: int = COMMUNITY_QUOTA,
    ) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.api_key = next(iter(api_keys), DEFAULT_API_KEY)
        self.quota = quota
        self.profiles: dict[str, IPProfile] = {}
        self.lookups: list[Request] = []
        self.used: Counter[str] = Counter()  # tokens consumed today, per key
        for ip, profile in (ips or {}).items():
            self.set_ip(ip, profile)

    # --- configuration and counters -----------------------------------------------------

    def set_ip(
        self, ip: str, profile: IPProfile | str | Mapping[str, Any] = "malicious", /, **changes: Any
    ) -> IPProfile:
        """Add or replace what the fake knows of `ip`; keyword arguments change single fields."""
        p = replace(_profile(profile), **changes) if changes else _profile(profile)
        smoke_item(ip, p)  # fail now, in the test, rather than as a 500 later
        with self._lock:
            self.profiles[_normal(ip)] = p
        return p

    def forget_ip(self, ip: str) -> None:
        with self._lock:
            self.profiles.pop(_normal(ip), None)

    def remaining(self, api_key: str | None = None) -> int:
        """Tokens left today for `api_key` (default: the first key)."""
        with self._lock:
            return max(self.quota - self.used[api_key or self.api_key], 0)

    def reset_quota(self, api_key: str | None = None) -> None:
        """A new day: the quota of `api_key` (default: every key) is whole again."""
        with self._lock:
            if api_key is None:
                self.used.clear()
            else:
                self.used.pop(api_key, None)

    def reset_counters(self) -> None:
        """Forget the requests seen so far (the quota is kept; see reset_quota)."""
        with self._lock:
            self.lookups.clear()

    @property
    def total(self) -> int:
        """Every request answered, whatever its status."""
        with self._lock:
            return len(self.lookups)

    def calls_for(self, ip: str) -> int:
        """Requests that named `ip` (single or batch), whatever their status."""
        try:
            wanted = _normal(ip)
        except ValueError:
            wanted = ip
        with self._lock:
            return sum(1 for r in self.lookups if wanted in {_try_normal(i) for i in r.ips})

    def calls_by_ip(self) -> Counter[str]:
        with self._lock:
            return Counter(_try_normal(i) for r in self.lookups for i in set(r.ips))

    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(r.status for r in self.lookups)

    # --- the API ------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        status, body = self.respond(request.method, request.path, request.query, request.headers)
        return Reply(status, body)

    def respond(
        self, method: str, path: str, query: str, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        """Answer one request: `(status, JSON body)`. Headers' names are lower case."""
        status, body, ips = self._answer(method, path, query, headers.get("x-api-key"))
        with self._lock:
            self.lookups.append(Request(method, path, ips, headers.get("x-api-key"), status))
        return status, body

    def _answer(
        self, method: str, path: str, query: str, key: str | None
    ) -> tuple[int, Any, tuple[str, ...]]:
        batch = path.rstrip("/") == "/v2/smoke"
        if not batch and not path.startswith("/v2/smoke/"):
            return 404, {"message": "Not Found"}, ()
        if batch:
            raw = ",".join(parse_qs(query).get("ips", []))
            ips = tuple(dict.fromkeys(i.strip() for i in raw.split(",") if i.strip()))
        else:
            ips = (path[len("/v2/smoke/") :],)
        if method != "GET":
            return 405, {"message": "Method Not Allowed"}, ips
        if key is None or key not in self.api_keys:
            return 403, {"message": "Forbidden"}, ips
        with self._lock:
            if self.used[key] >= self.quota:
                return 429, {"message": "Too Many Requests"}, ips
        if not ips:
            return 400, {"message": "missing required query parameter 'ips'"}, ips
        try:
            normal = [_normal(ip) for ip in ips]
        except ValueError as exc:
            return 400, {"message": f"invalid IP address: {exc}"}, ips
        with self._lock:
            found = [(ip, self.profiles[ip]) for ip in normal if ip in self.profiles]
            if len(found) > self.quota - self.used[key]:
                return 429, {"message": "Too Many Requests"}, ips
            self.used[key] += len(found)
        items = [smoke_item(ip, p) for ip, p in found]
        if batch:
            return (
                200,
                {"total": len(items), "not_found": len(ips) - len(items), "items": items},
                ips,
            )
        if not items:
            return 404, NOT_FOUND, ips
        return 200, items[0], ips

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering in-process, for `httpx.Client(transport=…)`."""

        def answer(request: httpx.Request) -> httpx.Response:
            status, body = self.respond(
                request.method,
                request.url.path,
                request.url.query.decode("latin-1"),
                {k.lower(): v for k, v in request.headers.items()},
            )
            return httpx.Response(
                status, content=orjson.dumps(body), headers={"content-type": "application/json"}
            )

        return httpx.MockTransport(answer)


def _try_normal(ip: str) -> str:
    try:
        return _normal(ip)
    except ValueError:
        return ip
