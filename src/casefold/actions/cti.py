"""Threat-intel lookups as playbook actions: CrowdSec, OpenCTI, AbuseIPDB, VirusTotal, MISP and
local IoC lists.

All go through the process's Enricher, so they share its cache and budgets with automatic
enrichment. A lookup the budget (or the provider's own 429) refused makes the step "skipped:
budget" (or "skipped: quota") with an "unknown" answer as its result, and the run goes on. An
address that is not public, or the empty file's hash, is skipped the same way: there is nothing
to ask.
"""

from __future__ import annotations

from typing import Any

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY, StepSkipped
from casefold.connectors.finding import worst
from casefold.connectors.opencti_alerts import alert_context, alert_observables
from casefold.enrichment.service import Outcome, detect_kind
from casefold.errors import InvalidInputError

_CROWDSEC_ALIASES = ("tools.crowdsec.lookup_ip_address", "tools.crowdsec_cti.lookup_ip_address")


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}", field=name)
    return value


def _lookup(ctx: ActionContext, provider: str, kind: str, value: str) -> Outcome:
    if ctx.enricher is None:
        raise InvalidInputError("threat-intel lookups are not available here", field="provider")
    outcome = ctx.enricher.lookup(provider, kind, value, network=ctx.makes_requests)
    if outcome.skipped == "dry run":
        source = ctx.enricher.providers[provider]
        method, url = source.describe(kind, outcome.value)
        ctx.http_trace.append(
            {
                "method": method,
                "url": url,
                "provider": provider,
                "lookup": f"{kind} {outcome.value}",
                "sent": False,
            }
        )
    elif outcome.skipped is None and not outcome.provenance.get("from_cache", True):
        ctx.called_out = True
    return outcome


def _finish(outcome: Outcome, result: dict[str, Any]) -> dict[str, Any]:
    """Return the result, or skip the step when no lookup could be made."""
    if outcome.skipped is not None and outcome.skipped != "dry run":
        raise StepSkipped(outcome.skipped, result)
    if outcome.skipped == "dry run":
        result["dry_run"] = True
    return result


@REGISTRY.action(
    "cti.crowdsec.lookup_ip", kind="network", required=("ip_address",), aliases=_CROWDSEC_ALIASES
)
def crowdsec_lookup_ip(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """CrowdSec CTI reputation of an IP; `result.data.reputation` as in the article."""
    ip = _text(args, "ip_address")
    outcome = _lookup(ctx, "crowdsec", "ip", ip)
    result = outcome.to_dict()
    # The article reads result.data.reputation; a skipped or unknown lookup still answers it.
    if result["data"] is None or not result["found"]:
        result["data"] = {"ip": outcome.value, "reputation": "unknown"}
    result["status_code"] = 200 if result["found"] else (404 if outcome.finding else None)
    return _finish(outcome, result)


@REGISTRY.action("cti.abuseipdb.check_ip", kind="network", required=("ip_address",))
def abuseipdb_check_ip(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """AbuseIPDB abuse confidence of an IP."""
    outcome = _lookup(ctx, "abuseipdb", "ip", _text(args, "ip_address"))
    return _finish(outcome, outcome.to_dict())


def _single(provider: str, args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    value = _text(args, "value")
    kind = args.get("kind") or detect_kind(value)
    outcome = _lookup(ctx, provider, str(kind), value)
    return _finish(outcome, outcome.to_dict())


@REGISTRY.action("cti.virustotal.lookup", kind="network", required=("value",), optional=("kind",))
def virustotal_lookup(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """VirusTotal report on a file hash, IP, domain or URL (kind guessed when not given)."""
    return _single("virustotal", args, ctx)


@REGISTRY.action("cti.misp.search", kind="network", required=("value",), optional=("kind",))
def misp_search(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """MISP attributes matching a value (restSearch)."""
    return _single("misp", args, ctx)


@REGISTRY.action("cti.local.lookup", kind="pure", required=("value",), optional=("kind",))
def local_lookup(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """The local IoC lists (CSV and STIX 2.1 bundle files)."""
    return _single("local", args, ctx)


@REGISTRY.action(
    "cti.opencti.lookup", kind="network", optional=("value", "values", "kind", "alert")
)
def opencti_lookup(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """OpenCTI indicators and observables for values, or for what a Wazuh alert carries.

    With `alert` (a Wazuh alert, e.g. TRIGGER.data), the observables are chosen as the
    wazuh-opencti integration chooses them, and every event gets the alert's context as
    `source`. `events` are the `opencti` objects to send back to Wazuh.
    """
    pairs: list[tuple[str, str]] = []
    source: dict[str, Any] = {}
    alert = args.get("alert")
    if alert is not None:
        if not isinstance(alert, dict):
            raise InvalidInputError("alert must be a Wazuh alert object", field="alert")
        pairs = alert_observables(alert)
        source = alert_context(alert)
    values = args.get("values")
    if args.get("value") is not None:
        values = [args["value"]]
    if values is not None:
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidInputError("values must be a list of strings", field="values")
        pairs += [(str(args.get("kind") or detect_kind(v)), v) for v in values]
    if alert is None and values is None:
        raise InvalidInputError("give value, values or alert", field="value")
    hits: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    skipped: list[str] = []
    for kind, value in dict.fromkeys(pairs):
        outcome = _lookup(ctx, "opencti", kind, value)
        if outcome.skipped in ("budget", "quota"):
            skipped.append(outcome.skipped)
        hit = outcome.to_dict()
        hits.append(hit)
        for event in hit.get("events") or []:
            events.append({**event, "source": source} if source else dict(event))
    result = {
        "found": any(h["found"] for h in hits),
        "verdict": worst([h["verdict"] for h in hits]),
        "lookups": hits,
        "events": events,
        "observables": [{"kind": k, "value": v} for k, v in dict.fromkeys(pairs)],
    }
    if skipped and not result["found"]:
        raise StepSkipped(skipped[0], result)
    return result
