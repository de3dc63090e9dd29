"""CrowdSec CTI smoke API: GET /v2/smoke/{ip} with the `x-api-key` header.

404 means CrowdSec knows nothing of the address: that is an answer (reputation "unknown"), not an
error. 403 is a bad key, 429 a spent quota (CrowdSec sends no Retry-After, so the HTTP layer
reports it as such at once).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from casefold.connectors.finding import Finding
from casefold.connectors.http import ProviderHTTP, json_body, refused, short_body

DEFAULT_BASE_URL = "https://cti.api.crowdsec.net"
NAME = "crowdsec"

_VERDICTS = {
    "malicious": "malicious",
    "suspicious": "suspicious",
    "known": "unknown",  # seen, but CrowdSec does not call it hostile
    "safe": "clean",
    "benign": "clean",
    "unknown": "unknown",
}


class CrowdSec:
    name = NAME
    kinds = frozenset({"ip"})

    def __init__(self, http: ProviderHTTP, base_url: str, api_key: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def smoke(self, ip: str) -> dict[str, Any]:
        """`{status_code, data}` where data is CrowdSec's JSON (404: reputation unknown)."""
        address = str(ipaddress.ip_address(ip.strip()))  # ValueError for a non-IP: never sent
        response = self.http.request(
            "GET",
            f"{self.base_url}/v2/smoke/{address}",
            headers={"x-api-key": self.api_key, "accept": "application/json"},
        )
        if response.status_code == 404:
            return {"status_code": 404, "data": {"ip": address, "reputation": "unknown"}}
        if response.status_code != 200:
            raise refused(NAME, response.status_code, short_body(response), secret=self.api_key)
        return {"status_code": 200, "data": json_body(NAME, response)}

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """The request a lookup would send (for dry runs)."""
        return "GET", f"{self.base_url}/v2/smoke/{value}"

    def lookup(self, kind: str, value: str) -> Finding:
        return finding(value, self.smoke(value))


def finding(ip: str, answer: dict[str, Any]) -> Finding:
    data = answer.get("data") or {}
    if answer.get("status_code") == 404:
        return Finding(NAME, "ip", ip, False, "unknown", None, "not known to CrowdSec", data)
    reputation = str(data.get("reputation") or "unknown")
    classifications = data.get("classifications") or {}
    false_positive = bool(classifications.get("false_positives"))
    verdict = "clean" if false_positive else _VERDICTS.get(reputation, "unknown")
    total = (((data.get("scores") or {}).get("overall") or {}).get("total")) or 0
    behaviors = [b.get("name") for b in data.get("behaviors") or [] if isinstance(b, dict)]
    parts = [reputation]
    if data.get("confidence"):
        parts[0] += f" ({data['confidence']} confidence)"
    if false_positive:
        parts.append(
            "false positive: "
            + ", ".join(
                str(c.get("label") or c.get("name")) for c in classifications["false_positives"]
            )
        )
    if behaviors:
        parts.append(", ".join(str(b) for b in behaviors[:5]))
    if data.get("as_name"):
        parts.append(f"AS {data['as_name']}")
    country = (data.get("location") or {}).get("country")
    if country:
        parts.append(str(country))
    score = max(0, min(100, int(total) * 20)) if isinstance(total, int | float) else None
    return Finding(NAME, "ip", ip, True, verdict, score, "; ".join(parts), data)
