"""The CrowdSec fake answers as external-apis.md §2.1 documents, over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from casefold.connectors import crowdsec
from casefold.connectors.http import ProviderError, ProviderHTTP, QuotaExceeded, RetryPolicy
from fakes.crowdsec import NOT_FOUND, CrowdSecFake, IPProfile

KEY = "cti-test-key"
DOC_FIELDS = {
    "ip", "ip_range", "ip_range_score", "ip_range_24", "ip_range_24_reputation",
    "ip_range_24_score", "reputation", "confidence", "background_noise",
    "background_noise_score", "as_name", "as_num", "reverse_dns", "location", "behaviors",
    "history", "classifications", "attack_details", "target_countries", "mitre_techniques",
    "cves", "scores", "references",
}  # fmt: skip


@pytest.fixture
def cti() -> Iterator[CrowdSecFake]:
    fake = CrowdSecFake(
        {
            "1.2.3.4": IPProfile(
                "malicious",
                behaviors=("http:scan", "ssh:bruteforce"),
                background_noise="high",
                reverse_dns="scanner-4.example.net",
            ),
            "203.0.113.9": "suspicious",
            "2001:db8::7": {"reputation": "known", "behaviors": ["tcp:scan"], "country": None},
        },
        api_keys=[KEY],
        quota=5,
    )
    with fake:
        yield fake


def smoke(cti: CrowdSecFake, ip: str, key: str | None = KEY) -> httpx.Response:
    headers = {"x-api-key": key} if key is not None else {}
    return httpx.get(f"{cti.url}/v2/smoke/{ip}", headers=headers, timeout=5)


def test_serves_on_loopback(cti: CrowdSecFake):
    assert cti.url.startswith("http://127.0.0.1:")


def test_known_ip_gets_every_documented_field(cti: CrowdSecFake):
    r = smoke(cti, "1.2.3.4")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    item = r.json()
    assert set(item) == DOC_FIELDS
    assert item["ip"] == "1.2.3.4" and item["reputation"] == "malicious"
    assert item["ip_range"] == item["ip_range_24"] == "1.2.3.0/24"
    assert item["confidence"] == "high"
    assert item["background_noise_score"] == 10
    assert item["reverse_dns"] == "scanner-4.example.net"
    assert set(item["location"]) == {"country", "city", "latitude", "longitude"}
    assert [b["name"] for b in item["behaviors"]] == ["http:scan", "ssh:bruteforce"]
    assert item["behaviors"][1]["label"] == "SSH Bruteforce"
    assert item["history"] == {
        "first_seen": "2022-05-28T16:00:00+00:00",
        "last_seen": "2023-10-15T05:45:00+00:00",
        "full_age": 507,
        "days_age": 505,
    }
    assert item["classifications"]["false_positives"] == []
    assert item["classifications"]["classifications"][0]["name"] == "community-blocklist"
    assert [a["name"] for a in item["attack_details"]] == [
        "crowdsecurity/http-probing",
        "crowdsecurity/ssh-bf",
    ]
    assert all(a["references"] == [] for a in item["attack_details"])
    assert {t["name"] for t in item["mitre_techniques"]} == {"T1595", "T1110"}
    assert set(item["scores"]) == {"overall", "last_day", "last_week", "last_month"}
    assert set(item["scores"]["overall"]) == {
        "aggressiveness",
        "threat",
        "trust",
        "anomaly",
        "total",
    }
    assert item["references"][0]["name"] == "list:crowdsec_high_background_noise"


def test_profile_shorthands_and_ipv6(cti: CrowdSecFake):
    sus = smoke(cti, "203.0.113.9").json()
    assert sus["reputation"] == "suspicious" and sus["confidence"] == "medium"
    assert sus["classifications"]["classifications"] == []  # not in the community blocklist
    v6 = smoke(cti, "2001:db8::7").json()
    assert v6["reputation"] == "known" and v6["location"]["country"] is None
    assert v6["ip_range"] == "2001:db8::/64" and v6["ip_range_24"] is None
    assert v6["behaviors"][0]["name"] == "tcp:scan"


def test_unknown_ip_is_404_with_crowdsecs_message(cti: CrowdSecFake):
    r = smoke(cti, "8.8.4.4")
    assert r.status_code == 404 and r.json() == NOT_FOUND
    assert r.json() == {"message": "IP address information not found"}
    assert cti.remaining() == 5  # only answers with data consume tokens


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_missing_or_wrong_key_is_403(cti: CrowdSecFake, key: str | None):
    r = smoke(cti, "1.2.3.4", key)
    assert r.status_code == 403 and "message" in r.json()
    assert cti.remaining() == 5


@pytest.mark.parametrize("ip", ["not-an-ip", "1.2.3.999", "1.2.3.4.5", "1.2.3.4/24"])
def test_malformed_ip_is_400(cti: CrowdSecFake, ip: str):
    r = smoke(cti, ip)
    assert r.status_code == 400 and "message" in r.json()


def test_quota_then_bare_429(cti: CrowdSecFake):
    for _ in range(5):
        assert smoke(cti, "1.2.3.4").status_code == 200
    assert cti.remaining() == 0
    r = smoke(cti, "1.2.3.4")
    assert r.status_code == 429
    assert "retry-after" not in r.headers
    assert not [h for h in r.headers if h.startswith(("x-ratelimit", "ratelimit"))]
    assert smoke(cti, "8.8.4.4").status_code == 429  # the gateway refuses before any lookup
    assert smoke(cti, "1.2.3.4", "wrong").status_code == 403  # the key is checked first
    cti.reset_quota()  # a new day
    assert smoke(cti, "1.2.3.4").status_code == 200 and cti.remaining() == 4


def test_quota_is_per_key():
    with CrowdSecFake({"1.2.3.4": "malicious"}, api_keys=["a", "b"], quota=1) as cti:
        assert smoke(cti, "1.2.3.4", "a").status_code == 200
        assert smoke(cti, "1.2.3.4", "a").status_code == 429
        assert smoke(cti, "1.2.3.4", "b").status_code == 200
        assert cti.remaining("a") == cti.remaining("b") == 0
        assert cti.used == {"a": 1, "b": 1}


def test_counters(cti: CrowdSecFake):
    smoke(cti, "1.2.3.4")
    smoke(cti, "1.2.3.4")
    smoke(cti, "8.8.4.4")
    smoke(cti, "1.2.3.4", key=None)
    assert cti.total == 4
    assert cti.calls_for("1.2.3.4") == 3 and cti.calls_for("8.8.4.4") == 1
    assert cti.calls_for("9.9.9.9") == 0
    assert cti.calls_by_ip() == {"1.2.3.4": 3, "8.8.4.4": 1}
    assert cti.statuses() == {200: 2, 404: 1, 403: 1}
    assert [r.api_key for r in cti.lookups] == [KEY, KEY, KEY, None]
    cti.reset_counters()
    assert cti.total == 0 and cti.remaining() == 3


def test_set_and_forget_ip_at_runtime(cti: CrowdSecFake):
    assert smoke(cti, "8.8.4.4").status_code == 404
    cti.set_ip("8.8.4.4", "safe", as_name="GOOGLE", as_num=15169)
    item = smoke(cti, "8.8.4.4").json()
    assert item["reputation"] == "safe" and item["as_name"] == "GOOGLE"
    cti.set_ip("8.8.4.4", IPProfile("benign", extra={"confidence": None}))
    assert smoke(cti, "8.8.4.4").json()["confidence"] is None  # extra overrides any field
    cti.forget_ip("8.8.4.4")
    assert smoke(cti, "8.8.4.4").status_code == 404
    with pytest.raises(ValueError):
        cti.set_ip("8.8.4.4", "evil")  # not a CrowdSec reputation


def test_batch_form(cti: CrowdSecFake):
    r = httpx.get(
        f"{cti.url}/v2/smoke",
        params={"ips": "1.2.3.4,8.8.4.4,203.0.113.9"},
        headers={"x-api-key": KEY},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2 and body["not_found"] == 1
    assert [i["ip"] for i in body["items"]] == ["1.2.3.4", "203.0.113.9"]
    assert cti.remaining() == 3  # one token per returned item
    assert cti.calls_for("8.8.4.4") == 1
    no_ips = httpx.get(f"{cti.url}/v2/smoke", headers={"x-api-key": KEY})
    assert no_ips.status_code == 400
    bad = httpx.get(
        f"{cti.url}/v2/smoke", params={"ips": "1.2.3.4,nope"}, headers={"x-api-key": KEY}
    )
    assert bad.status_code == 400
    cti.set_ip("1.2.3.5")
    too_many = httpx.get(
        f"{cti.url}/v2/smoke",
        params={"ips": "1.2.3.4,203.0.113.9,2001:db8::7,1.2.3.5"},
        headers={"x-api-key": KEY},
    )
    assert too_many.status_code == 429  # 4 items, 3 tokens left: nothing is consumed
    assert cti.remaining() == 3


def test_other_routes_and_methods(cti: CrowdSecFake):
    assert httpx.get(f"{cti.url}/v2/fire", headers={"x-api-key": KEY}).status_code == 404
    r = httpx.post(f"{cti.url}/v2/smoke/1.2.3.4", headers={"x-api-key": KEY})
    assert r.status_code == 405


def _connector(client: httpx.Client, base: str, key: str) -> crowdsec.CrowdSec:
    http = ProviderHTTP("crowdsec", client, RetryPolicy(attempts=2, backoff=0.01, timeout=5))
    return crowdsec.CrowdSec(http, base, key)


def test_in_process_transport_matches_the_server():
    fake = CrowdSecFake({"1.2.3.4": "malicious"}, quota=1)
    with httpx.Client(transport=fake.transport()) as client:
        cti = _connector(client, "https://cti.api.crowdsec.net", fake.api_key)
        unknown = cti.smoke("8.8.4.4")
        assert unknown == {"status_code": 404, "data": {"ip": "8.8.4.4", "reputation": "unknown"}}
        found = cti.smoke("1.2.3.4")
        assert found["data"]["reputation"] == "malicious"
        with pytest.raises(QuotaExceeded) as spent:  # bare 429: quota spent, not worth a retry
            cti.smoke("1.2.3.4")
        assert spent.value.status == 429 and not spent.value.retryable
    assert fake.calls_for("1.2.3.4") == 2 and fake.total == 3


def test_connector_against_the_real_socket(cti: CrowdSecFake):
    with httpx.Client() as client:
        with pytest.raises(ProviderError) as denied:
            _connector(client, cti.url, "wrong").smoke("1.2.3.4")
        assert denied.value.status == 403 and not denied.value.retryable
        assert "wrong" not in str(denied.value)
        finding = _connector(client, cti.url, KEY).lookup("ip", "1.2.3.4")
        assert finding.found and finding.verdict == "malicious"
        assert "ssh:bruteforce" in finding.summary or finding.summary.startswith("malicious")
