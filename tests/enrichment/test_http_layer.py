"""The shared HTTP layer over real sockets: timeouts, retries with back-off, 429 and Retry-After."""

from __future__ import annotations

import threading
import time
from collections import deque

import httpx
import pytest
from fakes.base import FakeRequest, FakeServer, Reply

from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    QuotaExceeded,
    RetryPolicy,
    parse_retry_after,
)


class Scripted(FakeServer):
    """Answers with the queued replies, then 200 {"ok": true}; an entry "slow" sleeps 1 s."""

    name = "scripted-fake"

    def __init__(self, *replies: Reply | str) -> None:
        super().__init__()
        self.script: deque[Reply | str] = deque(replies)

    def handle(self, request: FakeRequest) -> Reply:
        step = self.script.popleft() if self.script else Reply(200, {"ok": True})
        if step == "slow":
            time.sleep(1.0)
            return Reply(200, {"late": True})
        assert isinstance(step, Reply)
        return step


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def sender(client: httpx.Client, sleeps: list[float], **policy: float) -> ProviderHTTP:
    conf = {"attempts": 3, "backoff": 0.01, "timeout": 0.3, **policy}
    return ProviderHTTP("prov", client, RetryPolicy(**conf), sleep=sleeps.append)  # type: ignore[arg-type]


def test_server_errors_are_retried_then_the_answer_returned(client):
    with Scripted(Reply(503, {"e": 1}), Reply(502, "bad gateway")) as fake:
        sleeps: list[float] = []
        response = sender(client, sleeps).request("GET", fake.url + "/x")
    assert response.json() == {"ok": True}
    assert len(fake.requests) == 3 and len(sleeps) == 2
    assert sleeps[1] >= sleeps[0] * 0.5  # back-off grows (with jitter)


def test_persistent_5xx_gives_a_retryable_error_naming_the_provider(client):
    with Scripted(*[Reply(500, {"message": "boom"})] * 3) as fake:
        with pytest.raises(ProviderError) as err:
            sender(client, []).request("GET", fake.url + "/x")
    assert err.value.retryable and "prov" in str(err.value) and "500" in str(err.value)
    assert "after 3 attempts" in str(err.value)


def test_a_timeout_is_retried(client):
    with Scripted("slow") as fake:
        response = sender(client, []).request("GET", fake.url + "/x")
    assert response.json() == {"ok": True} and len(fake.requests) >= 1


def test_connection_refused_is_a_retryable_error(client):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ProviderError) as err:
        sender(client, []).request("GET", f"http://127.0.0.1:{port}/x")
    assert err.value.retryable and "cannot reach" in str(err.value)


def test_short_retry_after_is_waited_out(client):
    with Scripted(Reply(429, {"m": "slow down"}, headers={"Retry-After": "2"})) as fake:
        sleeps: list[float] = []
        response = sender(client, sleeps).request("GET", fake.url + "/x")
    assert response.status_code == 200 and sleeps == [2.0]


def test_bare_or_long_429_means_quota_spent(client):
    with Scripted(Reply(429, {"message": "Too Many Requests"})) as fake:
        with pytest.raises(QuotaExceeded) as bare:
            sender(client, []).request("GET", fake.url + "/x")
    assert bare.value.retry_after is None and len(fake.requests) == 1
    with Scripted(Reply(429, {}, headers={"Retry-After": "3600"})) as fake:
        with pytest.raises(QuotaExceeded) as long:
            sender(client, []).request("GET", fake.url + "/x")
    assert long.value.retry_after == 3600 and len(fake.requests) == 1


def test_client_errors_are_returned_not_retried(client):
    with Scripted(Reply(404, {"message": "nope"})) as fake:
        response = sender(client, []).request("GET", fake.url + "/x")
    assert response.status_code == 404 and len(fake.requests) == 1


def test_retry_after_forms():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = "Wed, 21 Oct 2099 07:28:00 GMT"
    assert parse_retry_after(future) > 1e9
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_sender_is_safe_across_threads(client):
    with Scripted() as fake:
        http = sender(client, [])
        errors: list[BaseException] = []

        def go() -> None:
            try:
                for _ in range(10):
                    assert http.request("GET", fake.url + "/x").status_code == 200
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(fake.requests) == 40


def test_a_short_retry_after_that_outlasts_the_attempts_is_handed_to_the_caller(client):
    with Scripted(*[Reply(429, {}, headers={"Retry-After": "7"})] * 3) as fake:
        sleeps: list[float] = []
        with pytest.raises(QuotaExceeded) as err:
            sender(client, sleeps).request("GET", fake.url + "/x")
    assert sleeps == [7.0, 7.0] and err.value.retry_after == 7.0  # the outbox waits it out
