"""Looking an observable up with a provider: normalise, cache, budget, call, remember.

Playbook actions (`cti.*`) and automatic case enrichment both come here, so both share one
cache and one budget per provider. Concurrent lookups of the same value wait for the first one
instead of each calling out: a flood of 10,000 alerts from 50 addresses costs 50 calls.

Every outcome carries its provenance (provider, when the answer was fetched, whether it came
from the cache); a lookup that was not made says why (`skipped`: budget, quota, private address,
empty-file hash, dry run).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from casefold.connectors.finding import KINDS, Finding, Provider
from casefold.connectors.http import ProviderError, QuotaExceeded
from casefold.enrichment.budget import Budgets
from casefold.enrichment.cache import EnrichmentCache
from casefold.errors import InvalidInputError
from casefold.metrics import ENRICHMENT_LOOKUPS
from casefold.sources.observables import (
    hash_kind,
    is_empty_file_hash,
    normalize_domain,
    normalize_url,
)

log = logging.getLogger("casefold.enrichment")


@dataclass
class Outcome:
    provider: str
    kind: str
    value: str
    finding: Finding | None = None
    skipped: str | None = None  # why no lookup was made
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.finding.verdict if self.finding else "unknown"

    def to_dict(self) -> dict[str, Any]:
        f = self.finding
        return {
            "provider": self.provider,
            "kind": self.kind,
            "value": self.value,
            "found": bool(f and f.found),
            "verdict": self.verdict,
            "score": f.score if f else None,
            "summary": f.summary if f else f"skipped: {self.skipped}",
            "data": f.data if f else None,
            **(f.extra if f else {}),
            "skipped": self.skipped,
            "provenance": self.provenance,
        }


def normalize(
    kind: str, value: Any, *, allow_private: bool = False
) -> tuple[str | None, str | None]:
    """(normalised value, None) or (None, why it is not looked up). Bad input raises.

    Private addresses are never sent to outside providers; local lists may list them."""
    if kind not in KINDS:
        raise InvalidInputError(f"unknown observable kind {kind!r}", field="kind")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"a {kind} to look up is needed, got {value!r}", field="value")
    text = value.strip()
    if kind == "ip":
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            raise InvalidInputError(f"{value!r} is not an IP address", field="value") from None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if not addr.is_global and not allow_private:
            return None, "private address"
        return str(addr), None  # str() gives the compressed IPv6 form
    if kind == "hash":
        lowered = text.lower()
        if hash_kind(lowered) is None:
            raise InvalidInputError(f"{value!r} is not an MD5, SHA-1 or SHA-256", field="value")
        if is_empty_file_hash(lowered):
            return None, "empty-file hash"
        return lowered, None
    if kind == "domain":
        domain = normalize_domain(text)
        if domain is None:
            raise InvalidInputError(f"{value!r} is not a domain name", field="value")
        return domain, None
    url = normalize_url(text)
    if url is None:
        raise InvalidInputError(f"{value!r} is not a URL", field="value")
    return url, None


def detect_kind(value: str) -> str:
    """ip, hash, url or domain, from the value's form."""
    text = value.strip()
    try:
        ipaddress.ip_address(text.strip("[]"))
        return "ip"
    except ValueError:
        pass
    if hash_kind(text.lower()) is not None:
        return "hash"
    if text.lower().startswith(("http://", "https://")):
        return "url"
    return "domain"


class Enricher:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        cache: EnrichmentCache,
        budgets: Budgets,
        ttls: Mapping[str, tuple[float, float]] | None = None,
        uncached: frozenset[str] = frozenset({"local"}),
        missing: Mapping[str, str] | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.missing = dict(missing or {})  # provider → why it is not configured
        self.cache = cache
        self.budgets = budgets
        self.ttls = dict(ttls or {})
        self.uncached = uncached  # answered from memory: no cache, no budget
        self._inflight: dict[tuple[str, str], threading.Lock] = {}
        self._inflight_guard = threading.Lock()
        self.calls: dict[str, int] = {}  # lookups that went to each provider

    def configured(self, provider: str) -> bool:
        return provider in self.providers

    def supports(self, provider: str, kind: str) -> bool:
        p = self.providers.get(provider)
        return p is not None and kind in p.kinds

    def lookup(self, provider: str, kind: str, value: Any, *, network: bool = True) -> Outcome:
        """Look `value` up. Raises InvalidInputError for bad input or an unknown provider,
        ProviderError when the provider cannot answer."""
        try:
            outcome = self._lookup(provider, kind, value, network=network)
        except ProviderError:
            ENRICHMENT_LOOKUPS.labels(provider, "error").inc()
            raise
        # Bad input raised above and is not counted: an unknown provider name is not a label.
        ENRICHMENT_LOOKUPS.labels(provider, self._result(outcome)).inc()
        return outcome

    def _result(self, outcome: Outcome) -> str:
        """The lookup's result as /metrics counts it; cache hit rate is hit / (hit + miss)."""
        if outcome.skipped in ("budget", "quota"):
            return "over_budget"
        if outcome.skipped is not None:
            return "skipped"  # private address, empty-file hash, dry run: nothing to ask
        if outcome.provider in self.uncached:
            return "uncached"
        return "hit" if outcome.provenance.get("from_cache") else "miss"

    def _lookup(self, provider: str, kind: str, value: Any, *, network: bool) -> Outcome:
        source = self.providers.get(provider)
        if source is None:
            why = self.missing.get(provider, "no such provider")
            raise InvalidInputError(f"{provider} is not configured: {why}", field="provider")
        if kind not in source.kinds:
            raise InvalidInputError(
                f"{provider} does not look up {kind} values (it does: "
                f"{', '.join(sorted(source.kinds))})",
                field="kind",
            )
        normalized, why_not = normalize(kind, value, allow_private=provider in self.uncached)
        if normalized is None:
            return Outcome(provider, kind, str(value).strip(), skipped=why_not)
        if provider in self.uncached:
            return Outcome(
                provider,
                kind,
                normalized,
                source.lookup(kind, normalized),
                None,
                {"provider": provider, "from_cache": False},
            )
        key = f"{kind}:{normalized}"
        hit = self._cached(provider, kind, normalized, key)
        if hit is not None:
            return hit
        if not network:
            return Outcome(provider, kind, normalized, skipped="dry run")
        with self._slot(provider, key):
            # Another thread may have fetched it while this one waited.
            hit = self._cached(provider, kind, normalized, key)
            if hit is not None:
                return hit
            refused = self.budgets.spend(provider)
            if refused is not None:
                return Outcome(provider, kind, normalized, skipped=refused)
            try:
                found = source.lookup(kind, normalized)
            except QuotaExceeded as exc:
                log.warning("%s: quota reached, no lookups until it resets (%s)", provider, exc)
                self.budgets.close(provider, exc.retry_after)
                return Outcome(provider, kind, normalized, skipped="quota")
            finally:
                self.calls[provider] = self.calls.get(provider, 0) + 1
            ttl, negative_ttl = self.ttls.get(provider, (86_400.0, 3_600.0))
            answer = self.cache.put(
                provider,
                key,
                found.to_dict(),
                negative=not found.found,
                ttl=timedelta(seconds=negative_ttl if not found.found else ttl),
            )
            return Outcome(provider, kind, normalized, found, None, answer.provenance(provider))

    def _cached(self, provider: str, kind: str, value: str, key: str) -> Outcome | None:
        answer = self.cache.get(provider, key)
        if answer is None or not isinstance(answer.value, dict):
            return None
        return Outcome(
            provider,
            kind,
            value,
            Finding.from_dict(answer.value),
            None,
            answer.provenance(provider),
        )

    def _slot(self, provider: str, key: str) -> _Slot:
        with self._inflight_guard:
            lock = self._inflight.setdefault((provider, key), threading.Lock())
        return _Slot(self, (provider, key), lock)


class _Slot:
    """Holds the per-value lock; the last holder removes it so the table does not grow."""

    def __init__(self, owner: Enricher, key: tuple[str, str], lock: threading.Lock) -> None:
        self.owner, self.key, self.lock = owner, key, lock

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        with self.owner._inflight_guard:
            self.lock.release()
            if not self.lock.locked() and self.owner._inflight.get(self.key) is self.lock:
                del self.owner._inflight[self.key]
