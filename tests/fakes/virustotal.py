"""A fake VirusTotal API v3, after external-apis.md §6.2 (error wording there is [mem]).

Routes, under ``/api/v3`` (use ``fake.base_url``), all ``GET`` with header ``x-apikey``:

* ``/files/{md5|sha1|sha256}``: 400 ``InvalidArgumentError`` for something that is not a hash,
  404 ``NotFoundError`` for an unknown one, else the file object.
* ``/ip_addresses/{ip}``: 400 for a malformed IP; an IP without a record gets 200 and an empty
  analysis (VirusTotal knows every address, often without any verdict) unless
  ``know_every_ip=False``, which makes it a 404 like the other kinds.
* ``/domains/{domain}``: 404 or the domain object.
* ``/urls/{id}``: id is the URL's unpadded URL-safe base64, or the SHA-256 of the URL; 400 when
  it is neither, 404 for an unknown URL.

Checks in order: injected failures (``fail_next``), the key (401 ``AuthenticationRequiredError``
without one, ``WrongCredentialsError`` with a wrong one), the daily quota (429
``QuotaExceededError``, with no Retry-After and no rate-limit headers), then the lookup. Each
authenticated request that is not refused for quota spends one of ``quota``.

    with VirusTotalFake() as vt:  # knows EICAR and 8.8.8.8 out of the box
        r = httpx.get(f"{vt.base_url}/files/{EICAR_MD5}", headers={"x-apikey": vt.api_key})
        assert r.json()["data"]["attributes"]["meaningful_name"] == "eicar.com"
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_API_KEY = "vt-test-key"
PUBLIC_DAILY_QUOTA = 500
PREFIX = "/api/v3"
SITE = "https://www.virustotal.com/api/v3"
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
EICAR_SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
FILE_STAT_KEYS = (
    "malicious",
    "suspicious",
    "undetected",
    "harmless",
    "timeout",
    "confirmed-timeout",
    "failure",
    "type-unsupported",
)
NETWORK_STAT_KEYS = ("harmless", "malicious", "suspicious", "undetected", "timeout")
_HEX = re.compile(r"[0-9a-fA-F]+")


def stats(keys: tuple[str, ...] = NETWORK_STAT_KEYS, **counts: int) -> dict[str, int]:
    """A `last_analysis_stats` object: every key of `keys` present, `counts` filled in.

    Python names stand for VT's dashed keys: confirmed_timeout → "confirmed-timeout"."""
    result = {k: 0 for k in keys}
    for key, count in counts.items():
        result[key.replace("_", "-")] = count
    return result


EICAR_STATS = stats(FILE_STAT_KEYS, malicious=62, undetected=4, type_unsupported=10)
GOOGLE_DNS_STATS = stats(harmless=66, undetected=22)


def analysis_results(counts: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Per-engine results consistent with `counts` (engine names are made up, bar Kaspersky)."""
    results: dict[str, dict[str, Any]] = {}
    for category, count in counts.items():
        for _ in range(count):
            first = category == "malicious" and "Kaspersky" not in results
            name = "Kaspersky" if first else f"Engine{len(results)}"
            results[name] = {
                "category": category,
                "engine_name": name,
                "engine_version": "1.0",
                "result": "EICAR-Test-File" if category == "malicious" else None,
                "method": "blacklist",
                "engine_update": "20240502",
            }
    return results


def url_identifier(url: str) -> str:
    """The fake's own reckoning of VT's URL id (kept apart from the connector's on purpose)."""
    return base64.b64encode(url.encode(), altchars=b"-_").decode().replace("=", "")


def _decode_url_id(ident: str) -> str | None:
    try:
        raw = base64.b64decode(ident + "=" * (-len(ident) % 4), altchars=b"-_", validate=True)
        return raw.decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _object(kind: str, ident: str, collection: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "id": ident,
            "type": kind,
            "links": {"self": f"{SITE}/{collection}/{ident}"},
            "attributes": attributes,
        }
    }


class VirusTotalFake(FakeServer):
    name = "virustotal-fake"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        quota: int = PUBLIC_DAILY_QUOTA,
        canned: bool = True,
        know_every_ip: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.quota = quota
        self.know_every_ip = know_every_ip
        self.used = 0
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # (collection, id) → body
        self._failures: deque[int] = deque()
        if canned:
            self.add_file()
            self.add_ip("8.8.8.8")

    @property
    def base_url(self) -> str:
        return self.url + PREFIX

    # --- configuration ---------------------------------------------------------------------

    def add_file(
        self,
        sha256: str = EICAR_SHA256,
        *,
        sha1: str | None = None,
        md5: str | None = None,
        analysis: Mapping[str, int] | None = None,
        meaningful_name: str | None = None,
        threat_label: str | None = None,
        **attributes: Any,
    ) -> dict[str, Any]:
        """A file known by its three hashes. Defaults: EICAR for its own SHA-256, otherwise a
        clean-ish file with made-up SHA-1/MD5. `attributes` set (or replace) any VT field."""
        sha256 = sha256.lower()
        eicar = sha256 == EICAR_SHA256
        if eicar:
            sha1, md5 = sha1 or EICAR_SHA1, md5 or EICAR_MD5
            default_stats, default_label = EICAR_STATS, "virus.eicar/test"
        else:
            # Made-up but stable companions, so a test can look the file up by any hash.
            sha1 = sha1 or hashlib.sha1(sha256.encode()).hexdigest()
            md5 = md5 or hashlib.md5(sha256.encode()).hexdigest()
            default_stats, default_label = stats(FILE_STAT_KEYS, undetected=70), None
        sha1, md5 = sha1.lower(), md5.lower()
        counts = dict(analysis or default_stats)
        label = threat_label if threat_label is not None else default_label
        attrs: dict[str, Any] = {
            "sha256": sha256,
            "sha1": sha1,
            "md5": md5,
            "meaningful_name": meaningful_name or ("eicar.com" if eicar else f"{sha256[:8]}.bin"),
            "type_description": "Text" if eicar else "Win32 EXE",
            "size": 68 if eicar else 4096,
            "tags": ["text", "attachment"] if eicar else [],
            "reputation": -12 if eicar else 0,
            "first_submission_date": 1148301722,
            "last_analysis_date": 1714650000,
            "last_analysis_stats": counts,
            "last_analysis_results": analysis_results(counts),
            "total_votes": {"harmless": 0, "malicious": 5 if eicar else 0},
        }
        if label:
            attrs["popular_threat_classification"] = {
                "suggested_threat_label": label,
                "popular_threat_category": [{"count": 20, "value": label.split(".")[0]}],
                "popular_threat_name": [{"count": 40, "value": label.split(".")[-1]}],
            }
        attrs.update(attributes)
        body = _object("file", sha256, "files", attrs)
        with self._lock:
            for digest in (sha256, sha1, md5):
                self.objects[("files", digest)] = body
        return body

    def add_ip(
        self,
        ip: str,
        *,
        analysis: Mapping[str, int] | None = None,
        as_owner: str | None = None,
        asn: int | None = None,
        country: str | None = None,
        **attributes: Any,
    ) -> dict[str, Any]:
        """An IP address. Defaults: the documented 8.8.8.8 (GOOGLE, harmless)."""
        address = str(ipaddress.ip_address(ip))
        counts = dict(analysis or GOOGLE_DNS_STATS)
        attrs: dict[str, Any] = {
            "as_owner": as_owner or "GOOGLE",
            "asn": asn or 15169,
            "country": country or "US",
            "continent": "NA",
            "network": "8.8.8.0/24",
            "regional_internet_registry": "ARIN",
            "reputation": 536,
            "tags": [],
            "last_analysis_date": 1714650000,
            "last_analysis_stats": counts,
            "last_analysis_results": analysis_results(counts),
            "total_votes": {"harmless": 210, "malicious": 30},
            "whois": "NetRange: 8.8.8.0 - 8.8.8.255\nOrgName: Google LLC",
        }
        attrs.update(attributes)
        body = _object("ip_address", address, "ip_addresses", attrs)
        with self._lock:
            self.objects[("ip_addresses", address)] = body
        return body

    def add_domain(
        self,
        domain: str,
        *,
        analysis: Mapping[str, int] | None = None,
        registrar: str | None = "Example Registrar, Inc.",
        **attributes: Any,
    ) -> dict[str, Any]:
        name = domain.strip().lower().rstrip(".")
        counts = dict(analysis or stats(harmless=60, undetected=25))
        attrs: dict[str, Any] = {
            "registrar": registrar,
            "creation_date": 1262304000,
            "reputation": 0,
            "tags": [],
            "categories": {},
            "last_analysis_date": 1714650000,
            "last_analysis_stats": counts,
            "last_analysis_results": analysis_results(counts),
            "total_votes": {"harmless": 0, "malicious": 0},
        }
        attrs.update(attributes)
        body = _object("domain", name, "domains", attrs)
        with self._lock:
            self.objects[("domains", name)] = body
        return body

    def add_url(
        self,
        url: str,
        *,
        analysis: Mapping[str, int] | None = None,
        title: str | None = None,
        last_final_url: str | None = None,
        **attributes: Any,
    ) -> dict[str, Any]:
        """A URL, reachable by both of VT's ids (base64 form and SHA-256)."""
        counts = dict(analysis or stats(harmless=70, undetected=20))
        digest = hashlib.sha256(url.encode()).hexdigest()
        attrs: dict[str, Any] = {
            "url": url,
            "last_final_url": last_final_url or url,
            "title": title,
            "reputation": 0,
            "tags": [],
            "times_submitted": 1,
            "last_analysis_date": 1714650000,
            "last_analysis_stats": counts,
            "last_analysis_results": analysis_results(counts),
            "total_votes": {"harmless": 0, "malicious": 0},
        }
        attrs.update(attributes)
        body = _object("url", digest, "urls", attrs)
        with self._lock:
            self.objects[("urls", digest)] = body
            self.objects[("urls", url_identifier(url))] = body
        return body

    def forget(self, collection: str, ident: str) -> None:
        with self._lock:
            self.objects.pop((collection, ident), None)

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (429: QuotaExceededError)."""
        with self._lock:
            self._failures.extend([status] * count)

    def remaining(self) -> int:
        with self._lock:
            return max(self.quota - self.used, 0)

    def reset_quota(self) -> None:
        with self._lock:
            self.used = 0

    # --- counters --------------------------------------------------------------------------

    def calls_for(self, value: str) -> int:
        """Requests about `value` (a hash, IP, domain or URL as given), whatever their answer."""
        wanted = {value, value.lower(), url_identifier(value)}
        wanted.add(hashlib.sha256(value.encode()).hexdigest())
        with self._lock:
            return sum(
                1 for r in self.requests if unquote(r.request.path.rsplit("/", 1)[-1]) in wanted
            )

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        with self._lock:
            if self._failures:
                status = self._failures.popleft()
                if status == 429:
                    return Reply(429, _error("QuotaExceededError", "Quota exceeded"))
                return Reply(status, _error("TransientError", "Please retry later"))
            key = request.headers.get("x-apikey")
            if not key:
                return Reply(
                    401, _error("AuthenticationRequiredError", "X-Apikey header is missing")
                )
            if key != self.api_key:
                return Reply(401, _error("WrongCredentialsError", "Wrong API key"))
            if self.used >= self.quota:
                return Reply(429, _error("QuotaExceededError", "Quota exceeded"))
            self.used += 1
            return self._lookup(request)

    def _lookup(self, request: FakeRequest) -> Reply:
        parts = request.path[len(PREFIX) :].strip("/").split("/")
        if not request.path.startswith(PREFIX + "/") or len(parts) != 2:
            return Reply(404, _error("NotFoundError", "Resource not found."))
        if request.method != "GET":
            return Reply(405, _error("MethodNotAllowedError", "Method not allowed"))
        collection, ident = parts[0], unquote(parts[1])
        if collection == "files":
            if not _HEX.fullmatch(ident) or len(ident) not in (32, 40, 64):
                return Reply(400, _error("InvalidArgumentError", f'Invalid file hash "{ident}"'))
            ident = ident.lower()
            found = self.objects.get(("files", ident))
            what = "File"
        elif collection == "ip_addresses":
            try:
                ident = str(ipaddress.ip_address(ident))
            except ValueError:
                return Reply(400, _error("InvalidArgumentError", f'"{ident}" is not a valid IP'))
            found = self.objects.get(("ip_addresses", ident))
            if found is None and self.know_every_ip:
                found = _object("ip_address", ident, "ip_addresses", _empty_ip())
            what = "IP address"
        elif collection == "domains":
            ident = ident.lower()
            found = self.objects.get(("domains", ident))
            what = "Domain"
        elif collection == "urls":
            is_digest = len(ident) == 64 and _HEX.fullmatch(ident) is not None
            if not is_digest and _decode_url_id(ident) is None:
                return Reply(400, _error("InvalidArgumentError", f'Invalid URL id "{ident}"'))
            found = self.objects.get(("urls", ident))
            what = "URL"
        else:
            return Reply(404, _error("NotFoundError", "Resource not found."))
        if found is None:
            return Reply(404, _error("NotFoundError", f'{what} "{ident}" not found'))
        return Reply(200, found)


def _empty_ip() -> dict[str, Any]:
    return {
        "reputation": 0,
        "tags": [],
        "last_analysis_stats": stats(),
        "last_analysis_results": {},
        "total_votes": {"harmless": 0, "malicious": 0},
    }
