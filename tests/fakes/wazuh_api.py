"""A fake Wazuh API (wazuh.md §3.6 and §6): login, `POST /events`, `PUT /active-response` and
`GET /agents`.

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

* ``PUT /active-response?agents_list=001,002`` with a token and
  ``{"command": str, "arguments": [str], "alert": {"data": {…}}}``: 400 ``{"title", "detail"}``
  for a body without a command or with ill-typed members; else 200 with the envelope. Without
  ``agents_list`` every agent but 000 is targeted. Per agent, as Wazuh's framework does: unknown
  → failed 1701 "Agent does not exist", 000 → failed 1703, not active → failed 1707 "Cannot
  send request, agent is not active", a command without ``!`` that is not in `ar_commands` →
  failed 1652; failed items are grouped by error with their ids. Each command that reached an
  agent is recorded in `active_responses`.
* ``GET /agents?agents_list=…&select=id,status`` with a token: the known agents (only the
  selected fields, ``id`` always) as affected items, unknown ids as failed items (1701).

`agents` maps ids to ``{"name", "ip", "status"}``; by default 000 (the manager), 001 and 002 are
active and 003 is disconnected.

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
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from fakes.base import FakeRequest, FakeServer, Reply

ALL_SENT = "All events were forwarded to analisysd"  # sic: Wazuh's own spelling
SOME_SENT = "Some events were forwarded to analisysd"
NONE_SENT = "No events were forwarded to analisysd"
AR_ALL = "AR command was sent to all agents"
AR_SOME = "AR command was not sent to some agents"
AR_NONE = "AR command was not sent to any agent"

# (code, message, remediation) as the framework's exception table words them.
AGENT_MISSING = (1701, "Agent does not exist", "Please, use `GET /agents` to find all agents")
MANAGER_AGENT = (1703, "Action not available for Manager (agent 000)", "")
AGENT_INACTIVE = (1707, "Cannot send request, agent is not active", "Check the agent's status")
UNKNOWN_COMMAND = (
    1652,
    "The command used is not defined in the configuration.",
    "Please, visit the official documentation to see the available commands",
)
DEFAULT_AGENTS: dict[str, dict[str, str]] = {
    "000": {"name": "wazuh-manager", "ip": "127.0.0.1", "status": "active"},
    "001": {"name": "web-01", "ip": "10.0.0.11", "status": "active"},
    "002": {"name": "db-01", "ip": "10.0.0.12", "status": "active"},
    "003": {"name": "laptop-07", "ip": "10.0.0.57", "status": "disconnected"},
}
DEFAULT_AR_COMMANDS = ("restart-wazuh0", "firewall-drop600", "host-deny600", "netsh600")


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
        agents: dict[str, dict[str, str]] | None = None,
        ar_commands: Iterable[str] = DEFAULT_AR_COMMANDS,
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
        self.agents = {k: dict(v) for k, v in (agents or DEFAULT_AGENTS).items()}
        self.ar_commands = set(ar_commands)  # the names in etc/shared/ar.conf
        # One entry per agent a command reached: {"agent", "command", "arguments", "alert"}.
        self.active_responses: list[dict[str, Any]] = []
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
        routes = {
            "/events": ("POST", self._events),
            "/active-response": ("PUT", self._active_response),
            "/agents": ("GET", self._agents),
        }
        if request.path in routes:
            method, handler = routes[request.path]
            if request.method != method:
                return _error(405, "Method Not Allowed", f"Use {method}")
            refusal = self._bearer_refusal(request)
            return refusal if refusal is not None else handler(request)
        return _error(404, "Not Found", "404: Not Found")

    def _bearer_refusal(self, request: FakeRequest) -> Reply | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "Unauthorized", "No authorization token provided")
        if not self._token_ok(token.strip()):
            return _error(401, "Unauthorized", "Invalid token")
        return None

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

    def _agents_list(self, request: FakeRequest) -> list[str] | None:
        query = urllib.parse.parse_qs(request.query)
        if "agents_list" not in query:
            return None
        return [a for a in ",".join(query["agents_list"]).split(",") if a]

    def _active_response(self, request: FakeRequest) -> Reply:
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return _error(400, "Bad Request", "Invalid JSON body")
        if not isinstance(body, dict):
            return _error(400, "Bad Request", f"{body!r} is not of type 'object'")
        command = body.get("command")
        if command is None:
            return _error(400, "Bad Request", "'command' is a required property")
        if not isinstance(command, str) or not command:
            return _error(400, "Bad Request", f"{command!r} is not of type 'string' - 'command'")
        arguments = body.get("arguments", [])
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            return _error(400, "Bad Request", f"{arguments!r} is not of type 'array' - 'arguments'")
        alert = body.get("alert", {})
        if not isinstance(alert, dict) or not isinstance(alert.get("data", {}), dict):
            return _error(400, "Bad Request", f"{alert!r} is not of type 'object' - 'alert'")
        targets = self._agents_list(request)
        if targets is None:
            targets = [a for a in self.agents if a != "000"]
        affected: list[str] = []
        failures: dict[tuple[int, str, str], list[str]] = {}
        for agent_id in targets:
            if agent_id not in self.agents:
                failures.setdefault(AGENT_MISSING, []).append(agent_id)
            elif agent_id == "000":
                failures.setdefault(MANAGER_AGENT, []).append(agent_id)
            elif self.agents[agent_id].get("status") != "active":
                failures.setdefault(AGENT_INACTIVE, []).append(agent_id)
            elif not command.startswith("!") and command not in self.ar_commands:
                failures.setdefault(UNKNOWN_COMMAND, []).append(agent_id)
            else:
                affected.append(agent_id)
                record = {"agent": agent_id, "command": command, "arguments": arguments}
                self.active_responses.append({**record, "alert": alert})
        return self._envelope(affected, failures, AR_ALL, AR_SOME, AR_NONE)

    def _agents(self, request: FakeRequest) -> Reply:
        query = urllib.parse.parse_qs(request.query)
        select = [f for f in ",".join(query.get("select", [])).split(",") if f]
        wanted = self._agents_list(request)
        if wanted is None:
            wanted = list(self.agents)
        affected: list[dict[str, Any]] = []
        failures: dict[tuple[int, str, str], list[str]] = {}
        for agent_id in wanted:
            if agent_id not in self.agents:
                failures.setdefault(AGENT_MISSING, []).append(agent_id)
                continue
            item = {"id": agent_id, **self.agents[agent_id]}
            if select:
                item = {k: v for k, v in item.items() if k == "id" or k in select}
            affected.append(item)
        return self._envelope(
            affected,
            failures,
            "All selected agents information was returned",
            "Some agents information was not returned",
            "No agent information was returned",
        )

    @staticmethod
    def _envelope(
        affected: list[Any],
        failures: dict[tuple[int, str, str], list[str]],
        all_msg: str,
        some_msg: str,
        none_msg: str,
    ) -> Reply:
        failed = [
            {"error": {"code": code, "message": message, "remediation": remedy}, "id": ids}
            for (code, message, remedy), ids in failures.items()
        ]
        failed_count = sum(len(ids) for ids in failures.values())
        return Reply(
            200,
            {
                "data": {
                    "affected_items": affected,
                    "total_affected_items": len(affected),
                    "total_failed_items": failed_count,
                    "failed_items": failed,
                },
                "message": all_msg if not failed else some_msg if affected else none_msg,
                "error": 0 if not failed else 2 if affected else 1,
            },
        )
