"""The Enricher against the CrowdSec fake over real HTTP: normalising, caching (negative answers
too), one call per value under concurrency, budgets, the provider's own 429."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes.crowdsec import CrowdSecFake

from casefold.connectors.crowdsec import CrowdSec
from casefold.connectors.http import ProviderError, ProviderHTTP, RetryPolicy
from casefold.enrichment.budget import Budgets, Limit
from casefold.enrichment.cache import EnrichmentCache
from casefold.enrichment.service import Enricher, detect_kind, normalize
from casefold.errors import InvalidInputError

KEY = "cti-test-key"


@pytest.fixture
def cti():
    with CrowdSecFake(
        {"1.2.3.4": "malicious", "5.6.7.8": "suspicious", "2001:db9::1": "malicious"},
        api_keys=[KEY],
        quota=1000,
    ) as fake:
        yield fake


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def make(
    cti: CrowdSecFake, client: httpx.Client, *, budget: int = 50, clock: Clock | None = None
) -> Enricher:
    http = ProviderHTTP("crowdsec", client, RetryPolicy(attempts=2, backoff=0.01, timeout=5))
    return Enricher(
        {"crowdsec": CrowdSec(http, cti.url, KEY)},
        EnrichmentCache(None, None, clock=clock),
        Budgets({"crowdsec": [Limit(budget, "day")]}, clock=clock),
        {"crowdsec": (3600.0, 600.0)},
    )


def test_found_then_served_from_cache_with_provenance(cti, client):
    enricher = make(cti, client)
    first = enricher.lookup("crowdsec", "ip", "1.2.3.4")
    again = enricher.lookup("crowdsec", "ip", " 1.2.3.4 ")
    assert first.verdict == "malicious" and first.provenance["from_cache"] is False
    assert again.provenance["from_cache"] is True
    assert again.provenance["fetched_at"] == first.provenance["fetched_at"]
    assert cti.calls_for("1.2.3.4") == 1
    assert again.to_dict()["data"]["reputation"] == "malicious"


def test_negative_answers_are_cached_for_their_own_time(cti, client):
    clock = Clock()
    enricher = make(cti, client, clock=clock)
    unknown = enricher.lookup("crowdsec", "ip", "9.9.9.9")
    assert not unknown.finding.found and unknown.verdict == "unknown"
    enricher.lookup("crowdsec", "ip", "9.9.9.9")
    assert cti.calls_for("9.9.9.9") == 1
    clock.now += timedelta(seconds=601)  # negative TTL is 600 s here
    enricher.lookup("crowdsec", "ip", "9.9.9.9")
    assert cti.calls_for("9.9.9.9") == 2


def test_private_addresses_and_ipv6_forms(cti, client):
    enricher = make(cti, client)
    assert enricher.lookup("crowdsec", "ip", "10.1.2.3").skipped == "private address"
    assert enricher.lookup("crowdsec", "ip", "192.0.2.7").skipped == "private address"
    mapped = enricher.lookup("crowdsec", "ip", "::ffff:1.2.3.4")
    assert mapped.value == "1.2.3.4"
    exploded = enricher.lookup("crowdsec", "ip", "2001:0db9:0000:0000:0000:0000:0000:0001")
    assert exploded.value == "2001:db9::1" and exploded.verdict == "malicious"
    assert cti.total == 2  # nothing was asked about the private ones


def test_bad_input_is_refused_with_the_field():
    enricher = Enricher(
        {}, EnrichmentCache(None, None), Budgets({}), missing={"crowdsec": "no key"}
    )
    with pytest.raises(InvalidInputError) as err:
        enricher.lookup("crowdsec", "ip", "1.2.3.4")
    assert "no key" in str(err.value) and err.value.field == "provider"
    with pytest.raises(InvalidInputError):
        normalize("ip", "not-an-ip")
    with pytest.raises(InvalidInputError):
        normalize("hash", "xyz")
    assert normalize(
        "hash", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
    ) == (
        None,
        "empty-file hash",
    )
    assert normalize("domain", "Evil.Example.COM.") == ("evil.example.com", None)


def test_kind_detection():
    assert detect_kind("8.8.8.8") == "ip" and detect_kind("2001:db8::1") == "ip"
    assert detect_kind("44D88612FEA8A8F36DE82E1278ABB02F") == "hash"
    assert detect_kind("https://bad.example/x") == "url"
    assert detect_kind("bad.example") == "domain"


def test_concurrent_lookups_of_one_value_make_one_call(cti, client):
    enricher = make(cti, client)
    ips = ["1.2.3.4", "5.6.7.8", "9.9.9.9", "8.8.4.4", "1.1.1.1"]
    barrier = threading.Barrier(20)

    def flood(n: int) -> None:
        barrier.wait()
        for i in range(50):
            enricher.lookup("crowdsec", "ip", ips[(i + n) % len(ips)])

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cti.total == len(ips)  # 1,000 lookups, one call per address


def test_spent_budget_skips_without_calling(cti, client):
    enricher = make(cti, client, budget=2)
    assert enricher.lookup("crowdsec", "ip", "1.2.3.4").skipped is None
    assert enricher.lookup("crowdsec", "ip", "5.6.7.8").skipped is None
    third = enricher.lookup("crowdsec", "ip", "8.8.4.4")
    assert third.skipped == "budget" and third.verdict == "unknown"
    assert third.to_dict()["summary"] == "skipped: budget"
    assert enricher.lookup("crowdsec", "ip", "1.2.3.4").provenance["from_cache"] is True
    assert cti.total == 2


def test_the_providers_429_closes_it_until_the_day_ends(client):
    with CrowdSecFake({"1.2.3.4": "malicious"}, api_keys=[KEY], quota=1) as cti:
        enricher = make(cti, client, budget=50)
        assert enricher.lookup("crowdsec", "ip", "1.2.3.4").verdict == "malicious"
        assert enricher.lookup("crowdsec", "ip", "5.6.7.8").skipped == "quota"
        assert enricher.lookup("crowdsec", "ip", "8.8.8.8").skipped == "quota"
        assert cti.total == 2  # the second 429 was never asked for
        assert "closed_until" in enricher.budgets.status("crowdsec")


def test_a_bad_key_is_an_error_that_does_not_show_the_key(cti, client):
    http = ProviderHTTP("crowdsec", client, RetryPolicy(attempts=1, timeout=5))
    enricher = Enricher(
        {"crowdsec": CrowdSec(http, cti.url, "wrong-secret-key")},
        EnrichmentCache(None, None),
        Budgets({}),
    )
    with pytest.raises(ProviderError) as err:
        enricher.lookup("crowdsec", "ip", "1.2.3.4")
    assert err.value.status == 403 and "wrong-secret-key" not in str(err.value)
    assert not err.value.retryable
