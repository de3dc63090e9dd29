"""CrowdSec CTI smoke API: GET /v2/smoke/{ip} with the `x-api-key` header.

404 means CrowdSec knows nothing of the address: that is an answer (reputation "unknown"), not an
error. 403 is a bad key, 429 a spent quota (CrowdSec sends no Retry-After).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx

DEFAULT_BASE_URL = "https://cti.api.crowdsec.net"


class CrowdSecError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = status >= 500 or status == 429


def smoke(
    client: httpx.Client, base_url: str, api_key: str, ip: str, timeout: float = 10.0
) -> dict[str, Any]:
    """The smoke answer for `ip`: `{status_code, data}` where data is CrowdSec's JSON."""
    address = str(ipaddress.ip_address(ip.strip()))  # ValueError for a non-IP: never sent
    response = client.get(
        f"{base_url.rstrip('/')}/v2/smoke/{address}",
        headers={"x-api-key": api_key, "accept": "application/json"},
        timeout=timeout,
    )
    if response.status_code == 404:
        return {"status_code": 404, "data": {"ip": address, "reputation": "unknown"}}
    if response.status_code != 200:
        raise CrowdSecError(
            response.status_code, f"CrowdSec answered {response.status_code}: {response.text[:200]}"
        )
    return {"status_code": 200, "data": response.json()}
