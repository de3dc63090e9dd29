"""The VirusTotal connector against the fake VirusTotal, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fakes.virustotal import (
    EICAR_MD5,
    EICAR_SHA256,
    FILE_STAT_KEYS,
    VirusTotalFake,
    stats,
)

from casefold.connectors.http import ProviderError, ProviderHTTP, QuotaExceeded, RetryPolicy
from casefold.connectors.virustotal import VirusTotal

KEY = "vt-secret-91b7e0"
OTHER_SHA256 = "a" * 64


@pytest.fixture
def fake() -> Iterator[VirusTotalFake]:
    with VirusTotalFake(api_key=KEY, quota=50) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def connector(fake: VirusTotalFake, client: httpx.Client, key: str = KEY) -> VirusTotal:
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=2)
    return VirusTotal(ProviderHTTP("virustotal", client, policy), fake.base_url, key)


def test_file_lookup_request_and_eicar_verdict(fake: VirusTotalFake, client: httpx.Client):
    found = connector(fake, client).lookup("hash", EICAR_SHA256)
    request = fake.requests[-1].request
    assert request.method == "GET" and request.path == f"/api/v3/files/{EICAR_SHA256}"
    assert request.headers["x-apikey"] == KEY
    assert found.found and found.verdict == "malicious"
    # 62 malicious of the 66 engines that gave a verdict (10 do not handle the type).
    assert found.score == 94
    assert found.summary == "62/66 engines: malicious; virus.eicar/test; eicar.com"
    assert found.data["attributes"]["md5"] == EICAR_MD5


def test_file_found_by_md5_whatever_its_case(fake: VirusTotalFake, client: httpx.Client):
    found = connector(fake, client).lookup("hash", EICAR_MD5.upper())
    assert fake.requests[-1].request.path == f"/api/v3/files/{EICAR_MD5}"
    assert found.verdict == "malicious" and found.data["id"] == EICAR_SHA256


def test_ip_lookup(fake: VirusTotalFake, client: httpx.Client):
    found = connector(fake, client).lookup("ip", "8.8.8.8")
    assert fake.requests[-1].request.path == "/api/v3/ip_addresses/8.8.8.8"
    assert found.found and found.verdict == "clean" and found.score == 0
    assert found.summary == "0/88 engines: malicious; AS15169 GOOGLE; US"


def test_ip_without_any_analysis_is_a_negative_answer(fake: VirusTotalFake, client: httpx.Client):
    found = connector(fake, client).lookup("ip", "2001:db8::5")
    assert fake.requests[-1].request.path == "/api/v3/ip_addresses/2001:db8::5"
    assert fake.statuses() == [200]
    assert not found.found and found.verdict == "unknown" and found.score is None
    assert found.summary == "no engine has analysed it yet"


def test_domain_lookup(fake: VirusTotalFake, client: httpx.Client):
    fake.add_domain(
        "evil.example", analysis=stats(malicious=5, suspicious=1, harmless=40, undetected=20)
    )
    found = connector(fake, client).lookup("domain", "evil.example")
    assert fake.requests[-1].request.path == "/api/v3/domains/evil.example"
    assert found.verdict == "malicious" and found.score == 8  # 5 of 66
    assert found.summary == (
        "5/66 engines: malicious, 1 suspicious; registrar Example Registrar, Inc."
    )


@pytest.mark.parametrize(
    ("url", "ident"),
    [
        ("http://example.com/", "aHR0cDovL2V4YW1wbGUuY29tLw"),
        # '?' and '>' produce '/' and '+' in standard base64; VT's id uses '_' and '-'.
        ("http://a.b/??>>>", "aHR0cDovL2EuYi8_Pz4-Pg"),
    ],
)
def test_url_id_is_unpadded_url_safe_base64(
    fake: VirusTotalFake, client: httpx.Client, url: str, ident: str
):
    fake.add_url(url, analysis=stats(malicious=1, harmless=60), title="Example")
    found = connector(fake, client).lookup("url", url)
    assert fake.requests[-1].request.path == f"/api/v3/urls/{ident}"
    assert found.found and found.verdict == "suspicious"
    assert found.summary == "1/61 engines: malicious; Example"


@pytest.mark.parametrize(
    ("counts", "verdict", "score"),
    [
        ({"malicious": 3, "undetected": 67}, "malicious", 4),
        ({"malicious": 2, "harmless": 10, "undetected": 58}, "suspicious", 3),
        ({"malicious": 1, "undetected": 69}, "suspicious", 1),
        ({"suspicious": 2, "harmless": 10, "undetected": 58}, "suspicious", 0),
        ({"suspicious": 1, "harmless": 5, "undetected": 64}, "clean", 0),
        ({"undetected": 70, "type_unsupported": 5}, "unknown", 0),
    ],
)
def test_verdict_from_engine_votes(
    fake: VirusTotalFake, client: httpx.Client, counts: dict[str, int], verdict: str, score: int
):
    fake.add_file(OTHER_SHA256, analysis=stats(FILE_STAT_KEYS, **counts))
    found = connector(fake, client).lookup("hash", OTHER_SHA256)
    assert found.found
    assert (found.verdict, found.score) == (verdict, score)


def test_unknown_file_is_not_found(fake: VirusTotalFake, client: httpx.Client):
    found = connector(fake, client).lookup("hash", OTHER_SHA256)
    assert not found.found and found.verdict == "unknown" and found.score is None
    assert found.summary == "not known to VirusTotal"
    assert fake.statuses() == [404]  # an answer, not a failure: not retried


def test_unknown_url_is_not_found(fake: VirusTotalFake, client: httpx.Client):
    found = connector(fake, client).lookup("url", "https://never.example/seen")
    assert not found.found and fake.statuses() == [404]


def test_wrong_key_is_reported_without_the_key(fake: VirusTotalFake, client: httpx.Client):
    wrong = "wrong-vt-key-33c1"
    with pytest.raises(ProviderError) as caught:
        connector(fake, client, wrong).lookup("hash", EICAR_SHA256)
    error = caught.value
    assert error.status == 401 and not error.retryable
    assert "WrongCredentialsError" in str(error) and "check the API key" in str(error)
    assert wrong not in str(error) and KEY not in str(error)
    assert fake.statuses() == [401]


def test_malformed_hash_is_refused_and_not_retried(fake: VirusTotalFake, client: httpx.Client):
    with pytest.raises(ProviderError) as caught:
        connector(fake, client).lookup("hash", "not-a-hash")
    assert caught.value.status == 400 and not caught.value.retryable
    assert "InvalidArgumentError" in str(caught.value)
    assert fake.statuses() == [400]


def test_spent_quota_raises_quota_exceeded_at_once(client: httpx.Client):
    with VirusTotalFake(api_key=KEY, quota=1) as fake:
        vt = connector(fake, client)
        vt.lookup("hash", EICAR_SHA256)
        with pytest.raises(QuotaExceeded) as caught:
            vt.lookup("ip", "8.8.8.8")
        assert caught.value.retry_after is None  # VT says nothing of when it comes back
        assert "QuotaExceededError" in str(caught.value)
        assert fake.statuses() == [200, 429]


def test_server_error_is_retried(fake: VirusTotalFake, client: httpx.Client):
    fake.fail_next(2, 500)
    found = connector(fake, client).lookup("hash", EICAR_SHA256)
    assert found.verdict == "malicious"
    assert fake.statuses() == [500, 500, 200]
    assert fake.calls_for(EICAR_SHA256) == 3
