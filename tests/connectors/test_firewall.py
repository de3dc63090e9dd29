"""The generic firewall API client against a fake firewall over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fakes.firewall import FirewallFake

from casefold.connectors.firewall import FirewallAPI, render_template, render_text
from casefold.connectors.http import ProviderError, ProviderHTTP, RetryPolicy

TEMPLATE = {"ip": "{ip}", "ttl": "{ttl}", "reason": "{reason}"}


@pytest.fixture
def fw() -> Iterator[FirewallFake]:
    with FirewallFake() as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def make_fw(
    fake: FirewallFake, client: httpx.Client, *, attempts: int = 1, **overrides: Any
) -> FirewallAPI:
    http = ProviderHTTP("firewall", client, RetryPolicy(attempts=attempts), sleep=lambda _: None)
    settings: dict[str, Any] = {
        "block_url": fake.url + "/api/block",
        "unblock_url": fake.url + "/api/block/{ip}",
        "body_template": TEMPLATE,
        "headers": {"x-client": "casefold"},
        "auth_header": f"Bearer {fake.token}",
    }
    settings.update(overrides)
    return FirewallAPI(http, **settings)


# --- templates ----------------------------------------------------------------------------


def test_whole_placeholders_keep_their_type_and_partial_ones_are_text() -> None:
    values = {"ip": "203.0.113.7", "ttl": 3600, "reason": "brute force {ip}"}
    template = {
        "action": "block",
        "source": "{ip}",
        "duration": "{ttl}",
        "note": "Wazuh: {reason} (for {ttl}s)",
        "tags": ["{ip}", 5, None, {"nested": "x-{ip}"}],
        "{ip}": "keys are never touched",
        "other": "{unrelated} {{ip}}",
    }
    rendered = render_template(template, values)
    assert rendered == {
        "action": "block",
        "source": "203.0.113.7",
        "duration": 3600,
        "note": "Wazuh: brute force {ip} (for 3600s)",  # one pass: the reason is not re-expanded
        "tags": ["203.0.113.7", 5, None, {"nested": "x-203.0.113.7"}],
        "{ip}": "keys are never touched",
        "other": "{unrelated} {203.0.113.7}",
    }
    assert render_template({"d": "{ttl}", "n": "t={ttl}"}, {**values, "ttl": None}) == {
        "d": None,
        "n": "t=",
    }
    assert render_text("{ip.__class__} {0} %s {ip}", values) == "{ip.__class__} {0} %s 203.0.113.7"


def test_seed_script_shape_from_a_json_string_template(
    fw: FirewallFake, client: httpx.Client
) -> None:
    # The user's AR script: POST {api}/rules {"action","source","duration","reason"}, Bearer.
    template = '{"action": "block", "source": "{ip}", "duration": "{ttl}", "reason": "{reason}"}'
    api = make_fw(fw, client, block_url=fw.url + "/api/rules", body_template=template)
    with pytest.raises(ProviderError, match="answered 404"):  # the fake only has /api/block
        api.block("198.51.100.4", ttl=3600, reason='say "hi"')
    request = fw.requests[-1].request
    assert (request.method, request.path) == ("POST", "/api/rules")
    assert request.headers["authorization"] == f"Bearer {fw.token}"
    assert request.headers["x-client"] == "casefold"
    assert request.json() == {
        "action": "block",
        "source": "198.51.100.4",
        "duration": 3600,
        "reason": 'say "hi"',
    }


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"body_template": "{not json"}, "not JSON"),
        ({"body_template": '"text"'}, "object or array"),
        ({"body_template": {"ip": "{IP}"}}, r"unknown placeholder \{IP\}"),
        ({"unblock_url": "http://fw/api/{address}"}, "unknown placeholder"),
        ({"block_url": "ftp://fw/block"}, "http"),
    ],
)
def test_bad_settings_are_refused_up_front(settings: dict[str, Any], match: str) -> None:
    http = ProviderHTTP("firewall", httpx.Client())
    base: dict[str, Any] = {"block_url": "https://fw/api/block", "body_template": TEMPLATE}
    with pytest.raises(ValueError, match=match):
        FirewallAPI(http, **{**base, **settings})


@pytest.mark.parametrize("ip", ["not-an-ip", "10.0.0.1/../../admin", "1.2.3.4?x=1", ""])
def test_bad_ips_never_reach_the_wire(fw: FirewallFake, client: httpx.Client, ip: str) -> None:
    api = make_fw(fw, client)
    with pytest.raises(ValueError, match="not an IP"):
        api.block(ip, reason="x")
    with pytest.raises(ValueError, match="not an IP"):
        api.unblock(ip)
    assert fw.requests == []


@pytest.mark.parametrize("ttl", [0, -5, True, 1.5])
def test_bad_ttl(fw: FirewallFake, client: httpx.Client, ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl"):
        make_fw(fw, client).block("203.0.113.7", ttl=ttl, reason="x")


# --- block / unblock ----------------------------------------------------------------------


def test_block_then_unblock(fw: FirewallFake, client: httpx.Client) -> None:
    api = make_fw(fw, client)
    assert api.block("203.0.113.7", ttl=600, reason="sshd brute force") == {
        "ip": "203.0.113.7",
        "action": "block",
        "result": "blocked",
        "status": 201,
    }
    assert fw.blocked == {
        "203.0.113.7": {"ip": "203.0.113.7", "ttl": 600, "reason": "sshd brute force"}
    }
    listed = client.get(fw.url + "/api/block", headers=fw.auth_headers()).json()
    assert listed == {"blocked": list(fw.blocked.values())}
    assert api.unblock("203.0.113.7")["result"] == "unblocked"
    assert fw.blocked == {}
    assert [(r.request.method, r.request.path, r.status) for r in fw.requests] == [
        ("POST", "/api/block", 201),
        ("GET", "/api/block", 200),
        ("DELETE", "/api/block/203.0.113.7", 204),
    ]


def test_ipv6_is_normalised_and_percent_encoded_in_the_url(
    fw: FirewallFake, client: httpx.Client
) -> None:
    api = make_fw(fw, client)
    api.block("2001:DB8::0:1", ttl=None, reason="")
    assert fw.blocked["2001:db8::1"]["ttl"] is None
    assert api.unblock("2001:db8::1")["result"] == "unblocked"
    assert fw.requests[-1].request.path == "/api/block/2001:db8::1"  # decoded by the server


def test_block_and_unblock_are_idempotent(fw: FirewallFake, client: httpx.Client) -> None:
    api = make_fw(fw, client)
    api.block("203.0.113.7", ttl=60, reason="first")
    again = api.block("203.0.113.7", ttl=60, reason="second")
    assert again["result"] == "already_blocked" and again["status"] == 409
    assert fw.blocked["203.0.113.7"]["reason"] == "first"
    assert api.unblock("203.0.113.7")["result"] == "unblocked"
    gone = api.unblock("203.0.113.7")
    assert gone["result"] == "not_blocked" and gone["status"] == 404


def test_unblock_needs_a_url(fw: FirewallFake, client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="unblock_url"):
        make_fw(fw, client, unblock_url=None).unblock("203.0.113.7")


def test_network_block(fw: FirewallFake, client: httpx.Client) -> None:
    api = make_fw(fw, client)
    api.block("198.51.100.0/24", ttl=None, reason="scanner range")
    assert "198.51.100.0/24" in fw.blocked
    assert api.unblock("198.51.100.0/24")["result"] == "unblocked" and fw.blocked == {}


def test_custom_methods_and_unblock_body(fw: FirewallFake, client: httpx.Client) -> None:
    api = make_fw(
        fw,
        client,
        block_url=fw.url + "/api/v2/hosts/{ip}",
        method="put",
        body_template=None,
        unblock_url=fw.url + "/api/v2/release",
        unblock_method="post",
        unblock_body_template={"hosts": ["{ip}"]},
    )
    with pytest.raises(ProviderError):  # the fake has no such routes: 404 on block is an error
        api.block("203.0.113.7", reason="")
    api.unblock("203.0.113.7")  # 404 on unblock means "not blocked"
    put, post = (r.request for r in fw.requests)
    assert (put.method, put.path, put.body) == ("PUT", "/api/v2/hosts/203.0.113.7", b"")
    assert (post.method, post.path, post.json()) == (
        "POST",
        "/api/v2/release",
        {"hosts": ["203.0.113.7"]},
    )


# --- errors -------------------------------------------------------------------------------


def test_bad_token_is_masked(fw: FirewallFake, client: httpx.Client) -> None:
    wrong = "Wr0ng-T0ken-xyz"
    with pytest.raises(ProviderError) as caught:
        make_fw(fw, client, auth_header=f"Bearer {wrong}").block("203.0.113.7", reason="x")
    message = str(caught.value)
    assert "answered 401" in message and "check the firewall API token" in message
    assert wrong not in message and "***" in message
    assert caught.value.status == 401 and not caught.value.retryable


def test_other_header_secrets_are_masked_too(fw: FirewallFake, client: httpx.Client) -> None:
    fw.fail_next(1, 400)
    with pytest.raises(ProviderError) as caught:
        make_fw(fw, client).block("203.0.113.7", reason="x")
    assert caught.value.status == 400 and fw.token not in str(caught.value)
    assert "request auth: ***" in str(caught.value)  # the fake echoed it: masked, not absent


def test_500_is_retried_by_the_http_policy(fw: FirewallFake, client: httpx.Client) -> None:
    fw.fail_next(2, 500)
    result = make_fw(fw, client, attempts=3).block("203.0.113.7", ttl=60, reason="x")
    assert result["result"] == "blocked" and [r.status for r in fw.requests] == [500, 500, 201]


def test_500_that_persists_is_retryable_and_masked(fw: FirewallFake, client: httpx.Client) -> None:
    fw.fail_next(3, 503)
    with pytest.raises(ProviderError) as caught:
        make_fw(fw, client, attempts=3).unblock("203.0.113.7")
    assert caught.value.retryable and "after 3 attempts" in str(caught.value)
    assert fw.token not in str(caught.value) and "***" in str(caught.value)
    assert len(fw.requests) == 3


def test_retried_block_after_a_lost_answer_is_still_success(
    fw: FirewallFake, client: httpx.Client
) -> None:
    # The first POST landed but its answer was lost; the retry meets 409 and that is fine.
    api = make_fw(fw, client)
    api.block("203.0.113.7", ttl=60, reason="x")
    assert api.block("203.0.113.7", ttl=60, reason="x")["result"] == "already_blocked"
