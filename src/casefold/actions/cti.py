"""Threat-intel lookups as playbook actions."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY
from casefold.connectors import crowdsec
from casefold.errors import InvalidInputError

CROWDSEC_SECRET = ("crowdsec_cti", "CTI_API_KEY")  # Tracecat's secret name and key


@REGISTRY.action(
    "cti.crowdsec.lookup_ip",
    kind="network",
    required=("ip_address",),
    aliases=("tools.crowdsec.lookup_ip_address", "tools.crowdsec_cti.lookup_ip_address"),
)
def crowdsec_lookup_ip(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """CrowdSec CTI reputation of an IP; `result.data.reputation` as in the article."""
    ip = args.get("ip_address")
    if not isinstance(ip, str) or not ip:
        raise InvalidInputError("ip_address must be an IP address", field="ip_address")
    key = ctx.secrets.get(CROWDSEC_SECRET[0], {}).get(CROWDSEC_SECRET[1])
    if not key:
        raise InvalidInputError(
            "secret crowdsec_cti.CTI_API_KEY is not configured", field="ip_address"
        )
    base = getattr(ctx.settings, "crowdsec_url", None) or crowdsec.DEFAULT_BASE_URL
    try:
        address = str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        raise InvalidInputError(f"{ip!r} is not an IP address", field="ip_address") from None
    if ctx.cache is not None:
        cached = ctx.cache.get("crowdsec", address)
        if cached is not None:
            return {**cached.value, "provenance": cached.provenance("crowdsec")}
    if not ctx.makes_requests:
        ctx.http_trace.append({"method": "GET", "url": f"{base}/v2/smoke/{address}", "sent": False})
        return {
            "status_code": None,
            "data": {"ip": address, "reputation": "unknown"},
            "dry_run": True,
        }
    ctx.called_out = True
    answer = crowdsec.smoke(ctx.http_client or httpx.Client(), base, key, address, ctx.timeout)
    if ctx.cache is not None and not ctx.dry_run:
        stored = ctx.cache.put("crowdsec", address, answer, negative=answer["status_code"] == 404)
        return {**answer, "provenance": stored.provenance("crowdsec")}
    return {**answer, "provenance": {"provider": "crowdsec", "from_cache": False}}
