"""Threat-intel lookups as playbook actions."""

from __future__ import annotations

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
    if not ctx.makes_requests:
        ctx.http_trace.append({"method": "GET", "url": f"{base}/v2/smoke/{ip}", "sent": False})
        return {"status_code": None, "data": {"ip": ip, "reputation": "unknown"}, "dry_run": True}
    try:
        return crowdsec.smoke(ctx.http_client or httpx.Client(), base, key, ip, ctx.timeout)
    except ValueError:
        raise InvalidInputError(f"{ip!r} is not an IP address", field="ip_address") from None
