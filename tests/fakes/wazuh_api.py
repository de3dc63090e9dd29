"""A fake Wazuh API for event ingestion (wazuh.md §6): login and `POST /events`.

Routes (anything else is 404, a wrong method 405):

* ``POST /security/user/authenticate`` with HTTP Basic: 200
  ``{"data": {"token": <JWT>}, "error": 0}``; wrong or missing credentials: 401
  ``{"title": "Unauthorized", "detail": "Invalid credentials"}``. With ``?raw=true`` the token
  alone, as text/plain.
* ``POST /events`` with ``Authorization: Bearer <JWT>`` and ``{"events": [str, …]}``:
  401 without a token ("No authorization token provided") or with an invalid, expired or revoked
  one ("Invalid token"); 429 past `max_requests_per_minute`; 400 for a body that is not
  ``{"events": [strings]}`` or holds more than 100 events; else 200 with the affected/failed
  items envelope. Events listed in `refuse` come back as failed items.

The JWT is HS256-signed with a per-fake secret and carries iat/nbf/exp; `token_lifetime`
(default 900 s) and `clock` (default time.time) make expiry testable, `revoke_tokens()` mimics
``PUT /security/user/revoke``.

    with WazuhAPIFake() as api:
        http = ProviderHTTP("wazuh", httpx.Client())
        WazuhAPI(http, api.url, api.username, api.password).send_events(['{"a":1}'])
        assert api.events == ['{"a":1}']
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from fakes.base import FakeRequest, FakeServer, Reply

ALL_SENT = "All events were forwarded to analisysd"  # sic: Wazuh's own spelling
SOME_SENT = "Some events were forwarded to analisysd"
NONE_SENT = "No events were forwarded to analisysd"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _error(status: int, title: str, detail: str, **extra: Any) -> Reply:
    # Wazuh's API errors are problem+json documents, not the data envelope.
    return Reply(
        status,
        {"title": title, "detail": detail, **extra},
        content_type="application/problem+json; charset=utf-8",
    )


class WazuhAPIFake(FakeServer):
    name = "wazuh-api-fake"

    def __init__(
        self,
        *,
        username: str = "wazuh-wui",
        password: str = "S3cret.Passw0rd*",
        token_lifetime: float = 900.0,
        max_requests_per_minute: int = 30,
        clock: Callable[[], float] = time.time,
        refuse: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.token_lifetime = token_lifetime
        self.max_requests_per_minute = max_requests_per_minute
        self.clock = clock
        self.refuse = set(refuse)  # events answered as failed items
        self.events: list[str] = []  # every event accepted, in order
        self.batches: list[int] = []  # size of each accepted POST /events
        self.logins = 0
        self._secret = secrets.token_bytes(32)
        self._issued: set[str] = set()
        self._revoked: set[str] = set()
        self._event_times: deque[float] = deque()

    # --- tokens -------------------------------------------------------------------------------

    def issue_token(self, lifetime: float | None = None) -> str:
        now = int(self.clock())
        claims = {
            "iss": "wazuh",
            "aud": "Wazuh API REST",
            "nbf": now,
            "iat": now,
            "exp": now + int(self.token_lifetime if lifetime is None else lifetime),
            "sub": self.username,
            "run_as": False,
            "rbac_roles": [1],
            "rbac_mode": "white",
            "jti": secrets.token_hex(8),  # two logins in one second still differ
        }
        head = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
        body = _b64(orjson.dumps(claims))
        signature = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        token = f"{head}.{body}.{_b64(signature)}"
        self._issued.add(token)
        return token

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (PUT /security/user/revoke)."""
        self._revoked |= self._issued

    def _token_ok(self, token: str) -> bool:
        try:
            head, body, signature = token.split(".")
            expected = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), expected):
                return False
            claims = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return False
        now = self.clock()
        return claims["exp"] > now and token not in self._revoked

    # --- routes -------------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        if request.path == "/security/user/authenticate":
            if request.method != "POST":
                return _error(405, "Method Not Allowed", "Use POST")
            return self._login(request)
        if request.path == "/events":
            if request.method != "POST":
                return _error(405, "Method Not Allowed", "Use POST")
            return self._events(request)
        return _error(404, "Not Found", "404: Not Found")

    def _login(self, request: FakeRequest) -> Reply:
        auth = request.headers.get("authorization", "")
        scheme, _, encoded = auth.partition(" ")
        try:
            user, _, password = _unb64(encoded.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = ""
        if scheme.lower() != "basic" or (user, password) != (self.username, self.password):
            return _error(401, "Unauthorized", "Invalid credentials")
        self.logins += 1
        token = self.issue_token()
        if "raw=true" in request.query:
            return Reply(200, token, content_type="text/plain")
        return Reply(200, {"data": {"token": token}, "error": 0})

    def _events(self, request: FakeRequest) -> Reply:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "Unauthorized", "No authorization token provided")
        if not self._token_ok(token.strip()):
            return _error(401, "Unauthorized", "Invalid token")
        now = self.clock()
        while self._event_times and now - self._event_times[0] >= 60:
            self._event_times.popleft()
        if len(self._event_times) >= self.max_requests_per_minute:
            return _error(
                429,
                "Too Many Requests",
                "Maximum number of requests per minute reached",
                error=6001,
            )
        self._event_times.append(now)
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return _error(400, "Bad Request", "Invalid JSON body")
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return _error(400, "Bad Request", "'events' must be a list of strings")
        if len(events) > 100:
            return _error(400, "Bad Request", f"{events[:1]!r}… is too long - 'events'")
        accepted = [e for e in events if e not in self.refuse]
        failed = [
            {
                "error": {
                    "code": 1014,
                    "message": "Error communicating with queue",
                    "remediation": "Check that analysisd is running",
                },
                "id": [e],
            }
            for e in events
            if e in self.refuse
        ]
        self.events += accepted
        self.batches.append(len(events))
        message = ALL_SENT if not failed else SOME_SENT if accepted else NONE_SENT
        return Reply(
            200,
            {
                "data": {
                    "affected_items": accepted,
                    "total_affected_items": len(accepted),
                    "total_failed_items": len(failed),
                    "failed_items": failed,
                },
                "message": message,
                "error": 0 if not failed else 2 if accepted else 1,
            },
        )
