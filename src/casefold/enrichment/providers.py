"""Building the threat-intel providers from Settings and SECRETS.

A provider is configured when it has a base URL and its credential is among the secrets (the
local IoC lists need only files). Secret names follow Tracecat's templates, so a Tracecat user's
secrets carry over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from casefold.config import ProviderSettings, Settings
from casefold.connectors.abuseipdb import AbuseIPDB
from casefold.connectors.crowdsec import CrowdSec
from casefold.connectors.finding import Provider
from casefold.connectors.http import ProviderHTTP, RetryPolicy
from casefold.connectors.local_ioc import LocalIoC
from casefold.connectors.misp import MISP
from casefold.connectors.opencti import OpenCTI
from casefold.connectors.virustotal import VirusTotal
from casefold.enrichment.budget import Budgets, Limit
from casefold.enrichment.cache import EnrichmentCache
from casefold.enrichment.service import Enricher
from casefold.store.writer import Writer

log = logging.getLogger("casefold.enrichment")

# provider → (secret name, key) holding its credential
SECRETS: dict[str, tuple[str, str]] = {
    "crowdsec": ("crowdsec_cti", "CTI_API_KEY"),
    "opencti": ("opencti", "OPENCTI_API_TOKEN"),
    "abuseipdb": ("abuseipdb", "ABUSEIPDB_API_KEY"),
    "virustotal": ("virustotal", "VIRUSTOTAL_API_KEY"),
    "misp": ("misp", "MISP_API_KEY"),
}
REMOTE = tuple(SECRETS)
ALL = (*REMOTE, "local")


@dataclass(frozen=True)
class Built:
    providers: dict[str, Provider]
    limits: dict[str, list[Limit]]
    ttls: dict[str, tuple[float, float]]
    missing: dict[str, str]  # provider → why it is not configured


def credential(name: str, secrets: Mapping[str, Mapping[str, str]]) -> str | None:
    secret, key = SECRETS[name]
    return secrets.get(secret, {}).get(key) or None


def build_providers(
    settings: Settings,
    secrets: Mapping[str, Mapping[str, str]],
    client: httpx.Client,
) -> Built:
    intel = settings.threat_intel
    providers: dict[str, Provider] = {}
    limits: dict[str, list[Limit]] = {}
    ttls: dict[str, tuple[float, float]] = {}
    missing: dict[str, str] = {}
    for name in REMOTE:
        conf: ProviderSettings = intel.provider(name)
        key = credential(name, secrets)
        if not conf.url:
            missing[name] = f"threat_intel.{name}.url is not set"
            continue
        if key is None:
            secret, field = SECRETS[name]
            missing[name] = f"secret {secret}.{field} is not configured"
            continue
        http = ProviderHTTP(
            name,
            client,
            RetryPolicy(attempts=conf.attempts, backoff=conf.backoff, timeout=conf.timeout),
        )
        providers[name] = _connector(name, http, conf, key)
        limits[name] = [Limit(b.calls, b.per) for b in conf.budget]
        ttls[name] = (conf.cache_ttl, conf.negative_ttl)
    if intel.local_files:
        providers["local"] = LocalIoC(list(intel.local_files))
    else:
        missing["local"] = "threat_intel.local_files is empty"
    return Built(providers, limits, ttls, missing)


def _connector(name: str, http: ProviderHTTP, conf: ProviderSettings, key: str) -> Provider:
    if name == "crowdsec":
        return CrowdSec(http, conf.url, key)
    if name == "opencti":
        return OpenCTI(http, conf.url, key, hash_key=conf.hash_key)
    if name == "abuseipdb":
        return AbuseIPDB(http, conf.url, key, max_age_days=conf.max_age_days)
    if name == "virustotal":
        return VirusTotal(http, conf.url, key)
    return MISP(http, conf.url, key)


def build_enricher(
    settings: Settings,
    secrets: Mapping[str, Mapping[str, str]],
    client: httpx.Client,
    engine: Engine | None = None,
    writer: Writer | None = None,
) -> Enricher:
    """The Enricher for a process; without engine and writer, cache and budgets live in memory."""
    built = build_providers(settings, secrets, client)
    return Enricher(
        built.providers,
        EnrichmentCache(engine, writer),
        Budgets(built.limits, engine, writer),
        built.ttls,
        missing=built.missing,
    )
