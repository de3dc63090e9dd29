"""The ExtraHop connector against the fake Reveal(x) API, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fakes.extrahop import EXAMPLE_ID, ExtraHopFake

from casefold.connectors.extrahop import (
    DetectionNotFound,
    ExtraHop,
    detection_update_for,
    ticket_url,
)
from casefold.connectors.http import ProviderError, ProviderHTTP, RetryPolicy

KEY = "eh-secret-key-5d1f"
CLIENT_ID = "casefold-client"
CLIENT_SECRET = "eh-client-secret-a93c"


class Clock:
    """A hand-driven monotonic clock shared by the client and the fake."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[ExtraHopFake]:
    with ExtraHopFake(
        api_key=KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock
    ) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def http(client: httpx.Client) -> ProviderHTTP:
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=2)
    return ProviderHTTP("extrahop", client, policy, sleep=lambda _: None)


def with_key(fake: ExtraHopFake, client: httpx.Client, key: str = KEY) -> ExtraHop:
    return ExtraHop(http(client), fake.url, api_key=key)


def with_oauth(
    fake: ExtraHopFake, client: httpx.Client, clock: Clock, secret: str = CLIENT_SECRET
) -> ExtraHop:
    return ExtraHop(http(client), fake.url, client_id=CLIENT_ID, client_secret=secret, clock=clock)


def paths(fake: ExtraHopFake) -> list[tuple[str, str, int]]:
    return [(r.request.method, r.request.path, r.status) for r in fake.requests]


# --- auth ----------------------------------------------------------------------------------


def test_apikey_auth_and_get(fake: ExtraHopFake, client: httpx.Client):
    detection = with_key(fake, client).get(EXAMPLE_ID)
    request = fake.requests[-1].request
    assert (request.method, request.path) == ("GET", f"/api/v1/detections/{EXAMPLE_ID}")
    assert request.headers["authorization"] == f"ExtraHop apikey={KEY}"
    assert request.headers["accept"] == "application/json"
    assert detection["title"] == "Rare SSH Port" and detection["risk_score"] == 60


def test_base_url_may_end_with_api_v1(fake: ExtraHopFake, client: httpx.Client):
    eh = ExtraHop(http(client), fake.url + "/api/v1/", api_key=KEY)
    assert eh.get(EXAMPLE_ID)["id"] == EXAMPLE_ID
    assert fake.requests[-1].request.path == f"/api/v1/detections/{EXAMPLE_ID}"


def test_oauth_token_is_fetched_once_and_reused(
    fake: ExtraHopFake, client: httpx.Client, clock: Clock
):
    eh = with_oauth(fake, client, clock)
    eh.get(EXAMPLE_ID)
    eh.search(None)
    eh.get(EXAMPLE_ID)
    token_request = fake.requests[0].request
    assert (token_request.method, token_request.path) == ("POST", "/oauth2/token")
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }
    assert fake.tokens_issued == 1
    token = next(iter(fake.tokens))
    assert fake.auth_headers() == [f"Bearer {token}"] * 3


def test_oauth_token_renewed_before_it_expires(
    fake: ExtraHopFake, client: httpx.Client, clock: Clock
):
    eh = with_oauth(fake, client, clock)  # the fake's tokens live 600 s and say so
    eh.get(EXAMPLE_ID)
    clock.now += 539  # inside the 60 s safety margin: still the same token
    eh.get(EXAMPLE_ID)
    assert fake.tokens_issued == 1
    clock.now += 2  # 541 s: within the margin of expiry, renewed before use
    eh.get(EXAMPLE_ID)
    assert fake.tokens_issued == 2
    assert 401 not in fake.statuses()  # renewed ahead of time, never refused


def test_oauth_token_dying_early_is_fetched_again_once(client: httpx.Client, clock: Clock):
    # The server announces an hour but its tokens die after 10 s.
    with ExtraHopFake(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock, token_ttl=10, expires_in=3600
    ) as fake:
        eh = with_oauth(fake, client, clock)
        eh.get(EXAMPLE_ID)
        clock.now += 20
        assert eh.get(EXAMPLE_ID)["id"] == EXAMPLE_ID
        assert paths(fake) == [
            ("POST", "/oauth2/token", 200),
            ("GET", f"/api/v1/detections/{EXAMPLE_ID}", 200),
            ("GET", f"/api/v1/detections/{EXAMPLE_ID}", 401),
            ("POST", "/oauth2/token", 200),
            ("GET", f"/api/v1/detections/{EXAMPLE_ID}", 200),
        ]


def test_oauth_second_401_is_an_error_not_a_loop(client: httpx.Client, clock: Clock):
    # Tokens that are dead on arrival: one retry with a fresh token, then give up.
    with ExtraHopFake(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock, token_ttl=0, expires_in=600
    ) as fake:
        with pytest.raises(ProviderError) as caught:
            with_oauth(fake, client, clock).get(EXAMPLE_ID)
        assert caught.value.status == 401
        assert fake.tokens_issued == 2
        assert fake.statuses() == [200, 401, 200, 401]


def test_oauth_bad_secret_reported_without_secrets(
    fake: ExtraHopFake, client: httpx.Client, clock: Clock
):
    wrong = "wrong-secret-77e2"
    with pytest.raises(ProviderError) as caught:
        with_oauth(fake, client, clock, secret=wrong).get(EXAMPLE_ID)
    error = caught.value
    assert error.status == 401 and not error.retryable
    assert "Invalid client credentials" in str(error)
    assert "check the OAuth client id and secret" in str(error)
    assert wrong not in str(error) and CLIENT_SECRET not in str(error)
    assert paths(fake) == [("POST", "/oauth2/token", 401)]  # the API is never called


def test_wrong_api_key_reported_without_the_key(fake: ExtraHopFake, client: httpx.Client):
    wrong = "wrong-eh-key-0c4b"
    with pytest.raises(ProviderError) as caught:
        with_key(fake, client, wrong).get(EXAMPLE_ID)
    error = caught.value
    assert error.status == 401 and not error.retryable
    assert "Invalid API key" in str(error) and "check the API key" in str(error)
    assert wrong not in str(error) and KEY not in str(error)
    assert fake.statuses() == [401]  # an API key is not refreshed: no second try


def test_echoed_credentials_are_masked(client: httpx.Client):
    class Echo(ExtraHopFake):
        def handle(self, request: Any) -> Any:
            from fakes.base import Reply

            return Reply(403, {"error_message": f"denied for {request.headers['authorization']}"})

    with Echo() as fake:
        with pytest.raises(ProviderError) as caught:
            with_key(fake, client).get(EXAMPLE_ID)
    assert caught.value.status == 403
    assert KEY not in str(caught.value) and "apikey=***" in str(caught.value)


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"api_key": KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        {"client_id": CLIENT_ID},
        {"client_secret": CLIENT_SECRET},
    ],
)
def test_exactly_one_auth_style(client: httpx.Client, credentials: dict[str, str]):
    with pytest.raises(ValueError):
        ExtraHop(http(client), "https://console.example.com", **credentials)


# --- search and poll -----------------------------------------------------------------------


def test_search_body_and_status_filter(fake: ExtraHopFake, client: httpx.Client):
    fake.add_detection(id=1, status="new", mod_time=5_000)
    fake.add_detection(id=2, status="closed", mod_time=6_000)
    fake.add_detection(id=3, status="new", mod_time=1_000)
    found = with_key(fake, client).search(
        2_000, limit=50, offset=0, filter={"status": ["new", "in_progress"]}
    )
    assert fake.search_bodies[-1] == {
        "limit": 50,
        "offset": 0,
        "sort": [{"field": "mod_time", "direction": "asc"}],
        "mod_time": 2_000,
        "filter": {"status": ["new", "in_progress"]},
    }
    # id 2 is closed, id 3 changed before the cursor; the example is in progress.
    assert [d["id"] for d in found] == [1, EXAMPLE_ID]


def test_search_without_cursor_pages_by_offset(fake: ExtraHopFake, client: httpx.Client):
    fake.add_detections(4, mod_time=100, step=10)
    eh = with_key(fake, client)
    first = eh.search(None, limit=2)
    second = eh.search(None, limit=2, offset=2)
    assert "mod_time" not in fake.search_bodies[0]
    assert [d["mod_time"] for d in first + second] == [100, 110, 120, 130]


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (201, 0), (10, -1)])
def test_search_bounds_refused_before_sending(
    fake: ExtraHopFake, client: httpx.Client, limit: int, offset: int
):
    with pytest.raises(ValueError):
        with_key(fake, client).search(None, limit=limit, offset=offset)
    assert fake.requests == []


def test_poll_delivers_each_change_once_and_keeps_the_boundary(client: httpx.Client):
    with ExtraHopFake(api_key=KEY, canned=False) as fake:
        ids = fake.add_detections(5, mod_time=1_000, step=100)  # 1000 … 1400
        eh = with_key(fake, client)
        seen: set[int] = set()
        found, cursor = eh.poll_since(900, seen)
        assert [d["id"] for d in found] == ids
        assert cursor == 1_400 and seen == {ids[-1]}
        # Nothing new: the boundary detection is fetched again (mod_time ≥ cursor) but skipped.
        again, cursor_again = eh.poll_since(cursor, seen)
        assert again == [] and cursor_again == 1_400 and seen == {ids[-1]}


def test_poll_follows_offset_through_a_page_sharing_one_mod_time(client: httpx.Client):
    with ExtraHopFake(api_key=KEY, canned=False) as fake:
        ids = fake.add_detections(7, mod_time=5_000)  # all modified in the same millisecond
        found, cursor = with_key(fake, client).poll_since(1, set(), limit=3)
        assert [d["id"] for d in found] == ids
        assert cursor == 5_000
        bodies = [(b["mod_time"], b["offset"]) for b in fake.search_bodies]
        assert bodies == [(1, 0), (1, 3), (1, 6)]


def test_poll_loses_nothing_when_a_mod_time_straddles_pages(client: httpx.Client):
    with ExtraHopFake(api_key=KEY, canned=False) as fake:
        for ident, mod_time in enumerate([10, 20, 30, 30, 30, 40], start=1):
            fake.add_detection(id=ident, mod_time=mod_time)
        seen: set[int] = set()
        found, cursor = with_key(fake, client).poll_since(0, seen, limit=3)
        # Page 1 ends inside the 30 block: the next page starts AT 30 (not 31) and skips id 3.
        assert [d["id"] for d in found] == [1, 2, 3, 4, 5, 6]
        assert cursor == 40 and seen == {6}
        bodies = [(b["mod_time"], b["offset"]) for b in fake.search_bodies]
        assert bodies == [(0, 0), (30, 0), (30, 3)]


def test_poll_delivers_a_detection_again_after_it_changes(fake: ExtraHopFake, client: httpx.Client):
    eh = with_key(fake, client)
    seen: set[int] = set()
    found, cursor = eh.poll_since(0, seen)
    assert [d["id"] for d in found] == [EXAMPLE_ID]
    eh.update(EXAMPLE_ID, assignee="alice")  # bumps mod_time
    found, new_cursor = eh.poll_since(cursor, seen)
    assert [d["id"] for d in found] == [EXAMPLE_ID] and found[0]["assignee"] == "alice"
    assert new_cursor > cursor and seen == {EXAMPLE_ID}


def test_poll_stops_after_max_pages_and_resumes(client: httpx.Client):
    with ExtraHopFake(api_key=KEY, canned=False) as fake:
        ids = fake.add_detections(6, mod_time=100, step=1)
        eh = with_key(fake, client)
        seen: set[int] = set()
        first, cursor = eh.poll_since(0, seen, limit=2, max_pages=2)
        rest, _ = eh.poll_since(cursor, seen, limit=2)
        # Each page after the first starts at the previous page's last mod_time (re-read, skipped).
        assert [d["id"] for d in first] == ids[:3]
        assert [d["id"] for d in rest] == ids[3:]


# --- get and update ------------------------------------------------------------------------


def test_get_unknown_detection(fake: ExtraHopFake, client: httpx.Client):
    with pytest.raises(DetectionNotFound) as caught:
        with_key(fake, client).get(42)
    assert isinstance(caught.value, ProviderError)
    assert caught.value.status == 404 and caught.value.detection_id == 42
    assert fake.statuses() == [404]  # an answer: not retried


def test_update_sends_only_given_fields(fake: ExtraHopFake, client: httpx.Client):
    before = fake.detection(EXAMPLE_ID)["mod_time"]
    sent = with_key(fake, client).update(EXAMPLE_ID, ticket_id="CF-12")
    request = fake.requests[-1].request
    assert (request.method, request.path) == ("PATCH", f"/api/v1/detections/{EXAMPLE_ID}")
    assert request.json() == {"ticket_id": "CF-12"} == sent
    assert fake.statuses() == [204]
    after = fake.detection(EXAMPLE_ID)
    assert after["ticket_id"] == "CF-12" and after["assignee"] == "admin"
    assert after["mod_time"] > before
    assert fake.history[EXAMPLE_ID] == [
        {"mod_time": after["mod_time"], "changes": {"ticket_id": "CF-12"}}
    ]


def test_update_closes_with_resolution(fake: ExtraHopFake, client: httpx.Client):
    with_key(fake, client).update(
        EXAMPLE_ID, ticket_id="CF-12", status="closed", assignee="alice", resolution="action_taken"
    )
    assert fake.patches == [
        (
            EXAMPLE_ID,
            {
                "ticket_id": "CF-12",
                "assignee": "alice",
                "status": "closed",
                "resolution": "action_taken",
            },
        )
    ]
    stored = fake.detection(EXAMPLE_ID)
    assert (stored["status"], stored["resolution"]) == ("closed", "action_taken")


def test_update_from_case_status(fake: ExtraHopFake, client: httpx.Client):
    change = detection_update_for("resolved", resolution_hint=None)
    with_key(fake, client).update(EXAMPLE_ID, ticket_id="CF-7", **change)
    assert fake.patches[-1][1] == {
        "ticket_id": "CF-7",
        "status": "closed",
        "resolution": "action_taken",
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "open"},
        {"status": "closed", "resolution": "fixed"},
        {"resolution": "action_taken"},  # a resolution needs status closed
        {"status": "in_progress", "resolution": "no_action_taken"},
        {"ticket_id": ""},
        {},
    ],
)
def test_invalid_update_refused_before_sending(
    fake: ExtraHopFake, client: httpx.Client, fields: dict[str, str]
):
    with pytest.raises(ValueError):
        with_key(fake, client).update(EXAMPLE_ID, **fields)
    assert fake.requests == []


def test_update_unknown_detection(fake: ExtraHopFake, client: httpx.Client):
    with pytest.raises(DetectionNotFound):
        with_key(fake, client).update(31337, status="in_progress")


# --- failures ------------------------------------------------------------------------------


def test_server_error_is_retried(fake: ExtraHopFake, client: httpx.Client):
    fake.fail_next(2, 500)
    eh = with_key(fake, client)
    assert eh.get(EXAMPLE_ID)["id"] == EXAMPLE_ID
    assert fake.statuses() == [500, 500, 200]
    assert eh.http.calls == 3


def test_persistent_server_error_is_retryable(fake: ExtraHopFake, client: httpx.Client):
    fake.fail_next(3, 503)
    with pytest.raises(ProviderError) as caught:
        with_key(fake, client).search(None)
    assert caught.value.retryable and "503" in str(caught.value)


def test_short_429_is_waited_out(fake: ExtraHopFake, client: httpx.Client):
    fake.fail_next(1, 429, retry_after=0)
    assert with_key(fake, client).search(None)[0]["id"] == EXAMPLE_ID
    assert fake.statuses() == [429, 200]


# --- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case_status", "hint", "expected"),
    [
        ("new", None, {"status": "new"}),
        ("in_progress", None, {"status": "in_progress"}),
        ("on_hold", None, {"status": "acknowledged"}),
        ("resolved", None, {"status": "closed", "resolution": "action_taken"}),
        ("resolved", "no_action_taken", {"status": "closed", "resolution": "no_action_taken"}),
        ("closed", None, {"status": "closed", "resolution": "no_action_taken"}),
        ("closed", "action_taken", {"status": "closed", "resolution": "action_taken"}),
        ("in_progress", "action_taken", {"status": "in_progress"}),  # hint only when closing
        ("unknown", None, {}),
        ("other", None, {}),
    ],
)
def test_detection_update_for(case_status: str, hint: str | None, expected: dict[str, str]):
    assert detection_update_for(case_status, resolution_hint=hint) == expected


@pytest.mark.parametrize(("case_status", "hint"), [("archived", None), ("closed", "fixed")])
def test_detection_update_for_refuses_unknown_values(case_status: str, hint: str | None):
    with pytest.raises(ValueError):
        detection_update_for(case_status, resolution_hint=hint)


def test_ticket_url():
    template = "https://jira.example.com/browse/$ticket_id"
    assert ticket_url(template, "EX-4437") == "https://jira.example.com/browse/EX-4437"
    assert ticket_url(template, "a/b?c") == "https://jira.example.com/browse/a%2Fb%3Fc"
    with pytest.raises(ValueError):
        ticket_url("https://jira.example.com/browse/", "EX-1")
