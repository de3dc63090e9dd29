"""Events back into Wazuh: queue framing, the queue socket, the API's POST /events, our rules."""

from __future__ import annotations

import base64
import errno
import socket
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fakes.wazuh_api import ALL_SENT, WazuhAPIFake
from fakes.wazuh_queue import QueueReceiver, parse_datagram
from support.clock import Clock

import casefold
from casefold.connectors.http import ProviderError, ProviderHTTP, QuotaExceeded, RetryPolicy
from casefold.connectors.wazuh_events import (
    MAX_DATAGRAM,
    QueueSender,
    WazuhAPI,
    frame_event,
)

RULES = Path(casefold.__file__).parent / "wazuh_side" / "rules" / "casefold_rules.xml"
OPENCTI_EVENT_TYPES = (
    "indicator_pattern_match",
    "indicator_partial_pattern_match",
    "observable_with_indicator",
    "observable_with_related_indicator",
    "error",
)


# --- framing ------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", [None, {"id": "000", "name": "manager", "ip": "127.0.0.1"}])
def test_frame_for_the_manager(agent: dict[str, str] | None) -> None:
    frame = frame_event(
        {"integration": "casefold", "note": "café"}, location="casefold", agent=agent
    )
    assert frame == '1:casefold:{"integration":"casefold","note":"café"}'.encode()


def test_frame_for_an_agent() -> None:
    agent = {"id": "003", "name": "WS-0042", "ip": "10.20.0.42"}
    frame = frame_event({"a": 1}, location="opencti", agent=agent)
    assert frame == b'1:[003] (WS-0042) 10.20.0.42->opencti:{"a":1}'
    assert frame_event({}, location="x", agent={"id": 7, "name": "db"}) == b"1:[007] (db) any->x:{}"


def test_ipv6_agent_and_odd_location_are_escaped_and_parse_back() -> None:
    agent = {"id": "012", "name": "web|01", "ip": "2001:db8::5"}
    frame = frame_event({"k": "v:w"}, location="case:fold|x", agent=agent)
    assert frame.startswith(b"1:[012] (web||01) 2001|:db8|:|:5->case|:fold||x:")
    message = parse_datagram(frame)
    assert message.valid and message.queue == "1"
    assert (message.agent_id, message.agent_name, message.agent_ip) == (
        "012",
        "web|01",
        "2001:db8::5",
    )
    assert message.location == "case:fold|x" and message.event == {"k": "v:w"}
    manager = parse_datagram(frame_event({}, location="a:b", agent=None))
    assert manager.agent_id == "000" and manager.location == "a:b"


def test_size_limit() -> None:
    overhead = len(frame_event({"p": ""}, location="casefold", agent=None))
    fits = {"p": "x" * (MAX_DATAGRAM - overhead)}
    assert len(frame_event(fits, location="casefold", agent=None)) == MAX_DATAGRAM
    with pytest.raises(ValueError, match="65536 bytes"):
        frame_event({"p": "x" * (MAX_DATAGRAM - overhead + 1)}, location="casefold", agent=None)


@pytest.mark.parametrize("location", ["", "two\nlines"])
def test_bad_locations(location: str) -> None:
    with pytest.raises(ValueError, match="location"):
        frame_event({}, location=location, agent=None)


def test_unencodable_event() -> None:
    with pytest.raises(ValueError, match="JSON"):
        frame_event({1: "not a string key"}, location="casefold", agent=None)  # type: ignore[dict-item]


# --- queue socket -------------------------------------------------------------------------


@pytest.fixture
def queue() -> Iterator[QueueReceiver]:
    with QueueReceiver() as receiver:
        yield receiver


def test_datagrams_reach_the_queue(queue: QueueReceiver) -> None:
    agent = {"id": "001", "name": "srv", "ip": "fe80::1"}
    frames = [
        frame_event({"integration": "casefold", "n": i}, location="casefold", agent=agent)
        for i in range(5)
    ] + [frame_event({"integration": "casefold"}, location="casefold", agent=None)]
    assert QueueSender(queue.path).send(frames) == 6
    messages = queue.wait_for(6)
    assert all(m.valid for m in messages)
    assert [m.event.get("n") for m in messages] == [0, 1, 2, 3, 4, None]
    assert messages[0].agent_ip == "fe80::1" and messages[-1].agent_id == "000"


def test_receiver_rejects_short_and_unframed_messages(queue: QueueReceiver) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for raw in (b"1:a", b"1:nocolon", b'1:[001] bad->x:{"a":1}'):
            sock.sendto(raw, str(queue.path))
    short, unframed, bad_agent = queue.wait_for(3)
    assert not short.valid and "shorter than 4" in (short.error or "")
    assert not unframed.valid and not bad_agent.valid
    assert queue.valid == []


def test_missing_socket_is_a_retryable_error(tmp_path: Path) -> None:
    path = tmp_path / "queue"
    with pytest.raises(ProviderError) as caught:
        QueueSender(path).send([b'1:casefold:{"a":1}'])
    assert caught.value.retryable and caught.value.provider == "wazuh"
    assert str(path) in str(caught.value)
    assert "is wazuh-analysisd running? does casefold run as wazuh or root?" in str(caught.value)


def test_stale_socket_file_is_refused() -> None:
    with tempfile.TemporaryDirectory(prefix="cfq-") as tmp:
        path = Path(tmp) / "queue"
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bound.bind(str(path))
        bound.close()  # the file stays, nobody listens: analysisd stopped
        with pytest.raises(ProviderError, match="wazuh-analysisd running") as caught:
            QueueSender(path).send([b"1:x:{}"])
        assert caught.value.retryable


def test_empty_batch_sends_nothing(tmp_path: Path) -> None:
    assert QueueSender(tmp_path / "nothing-here").send([]) == 0


def _full_socket(path: Path) -> socket.socket:
    """A bound socket nobody reads, filled until the kernel says EAGAIN."""
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.setblocking(False)
        for _ in range(100_000):
            try:
                filler.sendto(b"1:x:" + b"y" * 1000, str(path))
            except (BlockingIOError, OSError) as exc:
                assert isinstance(exc, BlockingIOError) or exc.errno == errno.ENOBUFS
                return sink
    raise AssertionError("the socket never filled up")


def test_full_queue_is_retried_then_reported() -> None:
    with tempfile.TemporaryDirectory(prefix="cfq-") as tmp:
        path = Path(tmp) / "queue"
        sink = _full_socket(path)
        waits: list[float] = []
        with sink, pytest.raises(ProviderError, match="stayed full") as caught:
            QueueSender(path, busy_retries=3, sleep=waits.append).send([b"1:x:{}"])
        assert caught.value.retryable and len(waits) == 3 and waits == sorted(waits)


def test_full_queue_recovers_when_drained() -> None:
    with tempfile.TemporaryDirectory(prefix="cfq-") as tmp:
        path = Path(tmp) / "queue"
        sink = _full_socket(path)
        with sink:
            sink.setblocking(False)

            def drain(_: float) -> None:  # analysisd catching up while we wait
                while True:
                    try:
                        sink.recv(70_000)
                    except BlockingIOError:
                        return

            assert QueueSender(path, sleep=drain).send([b'1:x:{"late":1}']) == 1
            assert parse_datagram(sink.recv(70_000)).event == {"late": 1}


# --- API ----------------------------------------------------------------------------------


def make_api(
    fake: WazuhAPIFake, client: httpx.Client, clock: Clock, password: str | None = None
) -> WazuhAPI:
    http = ProviderHTTP("wazuh", client, RetryPolicy(attempts=1))
    return WazuhAPI(http, fake.url + "/", fake.username, password or fake.password, clock=clock)


def test_login_and_send(api: WazuhAPIFake, client: httpx.Client, clock: Clock) -> None:
    wazuh = make_api(api, client, clock)
    events = [orjson.dumps({"integration": "casefold", "n": i}).decode() for i in range(3)]
    answer = wazuh.send_events(events)
    assert answer["total_affected_items"] == 3 and answer["total_failed_items"] == 0
    assert answer["requests"] == 1 and answer["message"] == ALL_SENT
    assert api.events == events and api.logins == 1
    login, post = (r.request for r in api.requests)
    user, _, password = base64.b64decode(login.headers["authorization"][6:]).decode().partition(":")
    assert login.method == "POST" and (user, password) == (api.username, api.password)
    assert post.headers["authorization"].startswith("Bearer ") and post.json() == {"events": events}


def test_150_events_go_in_two_requests(
    api: WazuhAPIFake, client: httpx.Client, clock: Clock
) -> None:
    events = [f'{{"n":{i}}}' for i in range(150)]
    answer = make_api(api, client, clock).send_events(events)
    assert api.batches == [100, 50] and api.events == events
    assert answer["requests"] == 2 and answer["total_affected_items"] == 150
    assert api.logins == 1


def test_expired_token_is_renewed_once(
    api: WazuhAPIFake, client: httpx.Client, clock: Clock
) -> None:
    wazuh = make_api(api, client, clock)
    wazuh.send_events(["{}"])
    api.revoke_tokens()  # the client still thinks its token is good
    wazuh.send_events(["{}"])
    assert api.logins == 2 and [r.status for r in api.requests] == [200, 200, 401, 200, 200]
    assert api.events == ["{}", "{}"]


def test_token_is_renewed_before_it_expires(client: httpx.Client, clock: Clock) -> None:
    with WazuhAPIFake(clock=clock, token_lifetime=120) as fake:
        wazuh = make_api(fake, client, clock)
        wazuh.send_events(["{}"])
        clock.now += 100  # still valid for the server and the client
        wazuh.send_events(["{}"])
        assert fake.logins == 1
        clock.now += 10  # 110 s: within the last tenth of the JWT's 120 s
        wazuh.send_events(["{}"])
        assert fake.logins == 2 and 401 not in [r.status for r in fake.requests]


def test_server_side_expiry_without_renewal_window(client: httpx.Client, clock: Clock) -> None:
    with WazuhAPIFake(clock=clock) as fake:
        wazuh = make_api(fake, client, clock)
        wazuh.authenticate()
        fake.clock = Clock(clock.now + 901)  # the manager's view: the token has expired
        wazuh.send_events(["{}"])
        assert fake.logins == 2 and [r.status for r in fake.requests] == [200, 401, 200, 200]


def test_bad_credentials_name_the_user_not_the_password(
    api: WazuhAPIFake, client: httpx.Client, clock: Clock
) -> None:
    wrong = "Wr0ng-Secret!"
    with pytest.raises(ProviderError) as caught:
        make_api(api, client, clock, password=wrong).send_events(["{}"])
    message = str(caught.value)
    assert api.username in message and "Invalid credentials" in message
    assert wrong not in message and api.password not in message
    assert caught.value.status == 401 and not caught.value.retryable
    assert api.events == []


def test_401_after_a_fresh_login_is_not_retried(client: httpx.Client, clock: Clock) -> None:
    class RejectsTokens(WazuhAPIFake):
        def _token_ok(self, token: str) -> bool:
            return False

    with RejectsTokens(clock=clock) as fake:
        with pytest.raises(ProviderError, match="fresh token of user 'wazuh-wui'") as caught:
            make_api(fake, client, clock).send_events(["{}"])
        assert not caught.value.retryable and fake.logins == 1


def test_failed_items_are_reported(api: WazuhAPIFake, client: httpx.Client, clock: Clock) -> None:
    api.refuse = {'{"bad":1}'}
    events = ['{"ok":1}', '{"bad":1}'] + [f'{{"n":{i}}}' for i in range(100)]
    with pytest.raises(ProviderError) as caught:
        make_api(api, client, clock).send_events(events)
    assert "1 of 102 events were refused (101 accepted)" in str(caught.value)
    assert "Error communicating with queue (code 1014)" in str(caught.value)
    assert not caught.value.retryable
    assert len(api.events) == 101 and api.batches == [100, 2]  # later batches still sent


def test_fake_enforces_wazuh_limits(api: WazuhAPIFake, client: httpx.Client) -> None:
    url = api.url + "/events"
    assert client.post(url, json={"events": []}).json() == {
        "title": "Unauthorized",
        "detail": "No authorization token provided",
    }
    bearer = {"authorization": f"Bearer {api.issue_token()}"}
    assert (
        client.post(url, json={"events": ["x"]}, headers={"authorization": "Bearer e.y.z"}).json()[
            "detail"
        ]
        == "Invalid token"
    )
    too_many = client.post(url, json={"events": ["{}"] * 101}, headers=bearer)
    assert too_many.status_code == 400 and "too long" in too_many.json()["detail"]
    for _ in range(29):  # the 400 counted as one of the 30 a minute
        assert client.post(url, json={"events": ["{}"]}, headers=bearer).status_code == 200
    assert client.post(url, json={"events": ["{}"]}, headers=bearer).status_code == 429
    raw = client.post(
        api.url + "/security/user/authenticate?raw=true", auth=(api.username, api.password)
    )
    assert raw.headers["content-type"].startswith("text/plain") and raw.text.count(".") == 2


def test_rate_limit_surfaces_as_quota(client: httpx.Client, clock: Clock) -> None:
    with WazuhAPIFake(clock=clock, max_requests_per_minute=1) as fake:
        wazuh = make_api(fake, client, clock)
        with pytest.raises(QuotaExceeded):
            wazuh.send_events(["{}"] * 150)
        assert fake.events == ["{}"] * 100
        clock.now += 61
        wazuh.send_events(["{}"])


# --- rules --------------------------------------------------------------------------------


def test_rules_file() -> None:
    # Wazuh rule files have several top-level <group>s: wrap them to parse as one document.
    root = ET.fromstring(f"<root>{RULES.read_text(encoding='utf-8')}</root>")
    groups = root.findall("group")
    assert groups and all(g.get("name") == "casefold,threat_intel," for g in groups)
    rules = root.findall("group/rule")
    ids = [int(r.get("id", "0")) for r in rules]
    assert len(ids) == len(set(ids)) and all(100700 <= i <= 100799 for i in ids)
    for rule in rules:
        assert rule.findtext("options") == "no_full_log"
        assert rule.findtext("description") and 0 <= int(rule.get("level", "-1")) <= 15
        for parent in rule.findall("if_sid"):
            assert int(parent.text or "0") in ids
    bases = {
        (r.find("field").text if r.find("field") is not None else None): r  # type: ignore[union-attr]
        for r in rules
        if r.findtext("decoded_as") == "json"
    }
    assert set(bases) == {"^casefold$", "^opencti$"}
    opencti_id = bases["^opencti$"].get("id")
    by_type = {
        (r.find("field").text or "").strip("^$"): r  # type: ignore[union-attr]
        for r in rules
        if r.findtext("if_sid") == opencti_id
        and r.find("field") is not None
        and r.find("field").get("name") == "opencti.event_type"  # type: ignore[union-attr]
    }
    assert set(OPENCTI_EVENT_TYPES) <= set(by_type)
    assert by_type["error"].findtext("group") == "opencti,opencti_error,"
    for event_type in OPENCTI_EVENT_TYPES[:-1]:
        assert by_type[event_type].findtext("group") == "opencti,opencti_alert,"
    assert by_type["indicator_pattern_match"].get("level") == "12"
    assert by_type["observable_with_indicator"].get("level") == "12"
    assert by_type["observable_with_related_indicator"].get("level") == "10"
    assert by_type["indicator_partial_pattern_match"].get("level") == "10"
    assert "$(opencti.indicator.name)" in by_type["indicator_pattern_match"].findtext(
        "description", ""
    )
