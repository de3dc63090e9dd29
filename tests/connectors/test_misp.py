"""The MISP connector against the fake MISP, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fakes.misp import MISPFake

from casefold.connectors.http import ProviderError, ProviderHTTP, RetryPolicy
from casefold.connectors.misp import MISP

KEY = "MispSecretAuthKeyForTests00000000000000a"
C2 = "116.163.24.195"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def fake() -> Iterator[MISPFake]:
    with MISPFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def connector(fake: MISPFake, client: httpx.Client, key: str = KEY) -> MISP:
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=2)
    return MISP(ProviderHTTP("misp", client, policy), fake.url, key)


def test_search_request_shape(fake: MISPFake, client: httpx.Client):
    fake.add_attribute(C2, "ip-dst")
    connector(fake, client).lookup("ip", C2)
    request = fake.requests[-1].request
    assert request.method == "POST" and request.path == "/attributes/restSearch"
    assert request.headers["authorization"] == KEY  # the bare key, no "Bearer"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.json() == {
        "returnFormat": "json",
        "value": C2,
        "type": ["ip-dst", "ip-src"],
        "enforceWarninglist": True,
        "includeEventTags": True,
        "limit": 50,
        "page": 1,
    }


@pytest.mark.parametrize(
    ("kind", "value", "types"),
    [
        ("hash", "d41d8cd98f00b204e9800998ecf8427f", ["md5", "filename|md5"]),
        ("hash", "da39a3ee5e6b4b0d3255bfef95601890afd80709", ["sha1", "filename|sha1"]),
        ("hash", SHA256, ["sha256", "filename|sha256"]),
        ("domain", "evil.example", ["domain", "hostname"]),
        ("url", "https://evil.example/payload", ["url", "link"]),
    ],
)
def test_attribute_types_follow_the_kind(
    fake: MISPFake, client: httpx.Client, kind: str, value: str, types: list[str]
):
    connector(fake, client).lookup(kind, value)
    assert fake.searches()[-1]["type"] == types
    assert fake.calls_for(value) == 1


def test_ids_flagged_match_is_malicious_with_summary(fake: MISPFake, client: httpx.Client):
    fake.add_attribute(C2, "ip-dst", tags=["tlp:amber"])
    fake.add_attribute(C2, "ip-src", tags=["tlp:amber"])
    phishing = fake.add_event("Phishing wave", tags=["tlp:green", 'misp-galaxy:actor="X"'])
    fake.add_attribute(C2, "ip-dst", event_id=phishing.id, to_ids=False, tags=[])
    found = connector(fake, client).lookup("ip", C2)
    assert found.found and found.verdict == "malicious" and found.score is None
    assert found.summary == (
        "3 attribute(s) in 2 event(s): Cobalt Strike C2 infrastructure; Phishing wave; "
        'tlp:amber, tlp:green, misp-galaxy:actor="X"'
    )
    assert len(found.data["Attribute"]) == 3


def test_context_only_match_is_suspicious(fake: MISPFake, client: httpx.Client):
    fake.add_attribute("evil.example", "domain", to_ids=False, event_info="Passive DNS notes")
    found = connector(fake, client).lookup("domain", "evil.example")
    assert found.found and found.verdict == "suspicious"
    assert found.summary == (
        "1 attribute(s) in 1 event(s): Passive DNS notes; tlp:amber; none flagged for IDS"
    )


def test_hash_in_a_file_object_is_found(fake: MISPFake, client: httpx.Client):
    fake.add_attribute(f"dropper.exe|{SHA256}", "filename|sha256", event_info="Dropper")
    found = connector(fake, client).lookup("hash", SHA256.upper())
    assert fake.searches()[-1]["value"] == SHA256
    assert found.found and found.verdict == "malicious"


def test_no_match_is_not_found(fake: MISPFake, client: httpx.Client):
    fake.add_attribute(C2, "comment")  # same text, but not an IP attribute
    found = connector(fake, client).lookup("ip", C2)
    assert not found.found and found.verdict == "unknown"
    assert found.summary == "not in MISP"


def test_warninglisted_value_is_not_found(fake: MISPFake, client: httpx.Client):
    fake.add_attribute("8.8.8.8", "ip-dst", event_info="Sandbox run")  # on the warninglist
    found = connector(fake, client).lookup("ip", "8.8.8.8")
    assert not found.found


def test_many_matches_say_there_may_be_more(fake: MISPFake, client: httpx.Client):
    for _ in range(55):
        fake.add_attribute(C2, "ip-dst")
    found = connector(fake, client).lookup("ip", C2)
    assert found.summary.startswith("50+ attribute(s) in 1 event(s)")


def test_bad_key_is_reported_without_the_key(fake: MISPFake, client: httpx.Client):
    wrong = "WrongMispKey0000000000000000000000000000"
    with pytest.raises(ProviderError) as caught:
        connector(fake, client, wrong).lookup("ip", C2)
    error = caught.value
    assert error.status == 403 and not error.retryable
    assert "Authentication failed" in str(error) and "check the API key" in str(error)
    assert wrong not in str(error) and KEY not in str(error)
    assert fake.statuses() == [403]


def test_bearer_prefix_is_refused_by_the_fake(fake: MISPFake, client: httpx.Client):
    r = client.post(
        fake.url + "/attributes/restSearch",
        json={"value": C2},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 403
    assert set(r.json()) == {"name", "message", "url"}


def test_server_error_is_retried(fake: MISPFake, client: httpx.Client):
    fake.add_attribute(C2, "ip-dst")
    fake.fail_next(1)
    found = connector(fake, client).lookup("ip", C2)
    assert found.verdict == "malicious"
    assert fake.statuses() == [500, 200]


def test_lasting_server_errors_are_retryable(fake: MISPFake, client: httpx.Client):
    fake.fail_next(5)
    with pytest.raises(ProviderError) as caught:
        connector(fake, client).lookup("ip", C2)
    assert caught.value.retryable and "server error 500" in str(caught.value)
    assert fake.statuses() == [500, 500, 500]
