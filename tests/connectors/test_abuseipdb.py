"""The AbuseIPDB connector against the fake AbuseIPDB, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from fakes.abuseipdb import AbuseIPDBFake, IPRecord, Report

from casefold.connectors.abuseipdb import AbuseIPDB
from casefold.connectors.http import ProviderError, ProviderHTTP, QuotaExceeded, RetryPolicy

KEY = "abuseipdb-secret-4f1c9a"
TENCENT = "118.25.6.39"


@pytest.fixture
def fake() -> Iterator[AbuseIPDBFake]:
    with AbuseIPDBFake({TENCENT: IPRecord()}, api_key=KEY, quota=20, reset_after=3600) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def connector(
    fake: AbuseIPDBFake,
    client: httpx.Client,
    *,
    key: str = KEY,
    sleeps: list[float] | None = None,
    max_age_days: int = 90,
) -> AbuseIPDB:
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=2)
    # Recording the waits instead of sleeping keeps Retry-After tests fast and observable.
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    http = ProviderHTTP("abuseipdb", client, policy, sleep=sleep)
    return AbuseIPDB(http, fake.base_url, key, max_age_days=max_age_days)


def test_check_request_and_documented_example(fake: AbuseIPDBFake, client: httpx.Client):
    found = connector(fake, client).lookup("ip", TENCENT)
    request = fake.requests[-1].request
    assert request.method == "GET" and request.path == "/api/v2/check"
    assert parse_qs(request.query, keep_blank_values=True) == {
        "ipAddress": [TENCENT],
        "maxAgeInDays": ["90"],
        "verbose": [""],
    }
    assert request.query.endswith("&verbose")  # the bare flag, as documented
    assert request.headers["key"] == KEY
    assert request.headers["accept"] == "application/json"
    assert (found.provider, found.kind, found.value) == ("abuseipdb", "ip", TENCENT)
    assert found.found and found.verdict == "malicious" and found.score == 100
    assert found.summary == (
        "confidence 100, 1 report(s), CN, Tencent Cloud Computing (Beijing) Co. Ltd, "
        "Data Center/Web Hosting/Transit"
    )
    assert found.data["reports"][0]["categories"] == [18, 22]  # verbose data kept


@pytest.mark.parametrize(
    ("record", "verdict", "score"),
    [
        (IPRecord(score=75), "malicious", 75),
        (IPRecord(score=74), "suspicious", 74),
        (IPRecord(score=25), "suspicious", 25),
        (IPRecord(score=24), "unknown", 24),
        (IPRecord(score=80, is_whitelisted=True), "clean", 80),
        (IPRecord(score=0, reports=(), is_whitelisted=True), "clean", 0),
    ],
)
def test_verdict_from_confidence_score(
    fake: AbuseIPDBFake, client: httpx.Client, record: IPRecord, verdict: str, score: int
):
    fake.add_ip("198.51.100.7", record)
    found = connector(fake, client).lookup("ip", "198.51.100.7")
    assert found.found
    assert (found.verdict, found.score) == (verdict, score)


def test_unreported_address_is_a_negative_answer(fake: AbuseIPDBFake, client: httpx.Client):
    found = connector(fake, client).lookup("ip", "8.8.4.4")
    assert not found.found
    assert found.verdict == "unknown" and found.score is None
    assert found.summary == "no reports in the last 90 days"


def test_max_age_days_is_sent_and_narrows_the_window(fake: AbuseIPDBFake, client: httpx.Client):
    fake.add_ip("203.0.113.5", 90, reports=(Report(age=timedelta(days=60)),))
    recent = connector(fake, client, max_age_days=30).lookup("ip", "203.0.113.5")
    assert parse_qs(fake.requests[-1].request.query)["maxAgeInDays"] == ["30"]
    assert not recent.found
    assert recent.summary.startswith("no reports in the last 30 days, CN, Tencent")
    wide = connector(fake, client, max_age_days=90).lookup("ip", "203.0.113.5")
    assert wide.found and wide.verdict == "malicious"


def test_summary_mentions_tor_and_several_reporters(fake: AbuseIPDBFake, client: httpx.Client):
    ip = "2a00:1450:4001:80b::200e"
    fake.add_ip(
        ip,
        60,
        reports=(Report(reporter_id=1), Report(reporter_id=2), Report(reporter_id=2)),
        is_tor=True,
        country_code="DE",
        isp="Example Tor Hosting",
        usage_type=None,
    )
    found = connector(fake, client).lookup("ip", ip)
    assert fake.calls_for(ip) == 1  # the IPv6 address went through the query intact
    assert found.verdict == "suspicious"
    assert found.summary == (
        "confidence 60, 3 report(s) from 2 user(s), DE, Example Tor Hosting, Tor exit node"
    )


def test_bad_key_is_reported_without_the_key(fake: AbuseIPDBFake, client: httpx.Client):
    wrong = "wrong-key-8d2e71"
    with pytest.raises(ProviderError) as caught:
        connector(fake, client, key=wrong).lookup("ip", TENCENT)
    error = caught.value
    assert error.status == 401 and not error.retryable
    assert "Authentication failed" in str(error) and "check the API key" in str(error)
    assert wrong not in str(error) and KEY not in str(error)
    assert fake.calls_for(TENCENT) == 1  # not retried


def test_invalid_ip_is_refused_and_not_retried(fake: AbuseIPDBFake, client: httpx.Client):
    with pytest.raises(ProviderError) as caught:
        connector(fake, client).lookup("ip", "999.1.1.1")
    assert caught.value.status == 422 and not caught.value.retryable
    assert "must be a valid IPv4 or IPv6 address" in str(caught.value)
    assert fake.statuses() == [422]


def test_spent_daily_quota_raises_quota_exceeded(client: httpx.Client):
    with AbuseIPDBFake({TENCENT: 100}, api_key=KEY, quota=2, reset_after=5400) as fake:
        abuse = connector(fake, client)
        abuse.lookup("ip", TENCENT)
        abuse.lookup("ip", "8.8.4.4")
        with pytest.raises(QuotaExceeded) as caught:
            abuse.lookup("ip", TENCENT)
        assert caught.value.retry_after == 5400  # when the quota comes back
        assert "Daily rate limit of 2 requests exceeded" in str(caught.value)
        assert fake.statuses() == [200, 200, 429]  # a long wait is not waited out


def test_short_retry_after_is_waited_out(fake: AbuseIPDBFake, client: httpx.Client):
    fake.fail_next(1, 429, retry_after=2)
    sleeps: list[float] = []
    found = connector(fake, client, sleeps=sleeps).lookup("ip", TENCENT)
    assert found.verdict == "malicious"
    assert sleeps == [2.0]
    assert fake.statuses() == [429, 200]


def test_server_error_is_retried(fake: AbuseIPDBFake, client: httpx.Client):
    fake.fail_next(1, 500)
    found = connector(fake, client).lookup("ip", TENCENT)
    assert found.verdict == "malicious"
    assert fake.statuses() == [500, 200]


def test_lasting_server_errors_are_retryable(fake: AbuseIPDBFake, client: httpx.Client):
    fake.fail_next(3, 503)
    with pytest.raises(ProviderError) as caught:
        connector(fake, client).lookup("ip", TENCENT)
    assert caught.value.retryable and "after 3 attempts" in str(caught.value)
    assert fake.calls_for(TENCENT) == 3


def test_fake_sends_rate_limit_headers_on_every_answer(client: httpx.Client):
    with AbuseIPDBFake(api_key=KEY, quota=1, reset_after=120) as fake:
        url = fake.base_url + "/check"

        def get(ip: str, key: str = KEY) -> httpx.Response:
            return client.get(url, params={"ipAddress": ip}, headers={"Key": key})

        bad_key, ok, spent = get("8.8.4.4", "nope"), get("8.8.4.4"), get("8.8.4.4")
        assert [r.status_code for r in (bad_key, ok, spent)] == [401, 200, 429]
        assert all(r.headers["x-ratelimit-limit"] == "1" for r in (bad_key, ok, spent))
        assert ok.headers["x-ratelimit-remaining"] == spent.headers["x-ratelimit-remaining"] == "0"
        assert spent.headers["retry-after"] == "120"
        assert int(spent.headers["x-ratelimit-reset"]) > 0
        assert spent.json()["errors"][0]["status"] == 429
        assert "countryName" not in ok.json()["data"]  # only with verbose
