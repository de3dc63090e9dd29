"""A fake Jira, Cloud or Server/DC, after external-apis.md §4 and the §10 checklist.

Wording marked [mem] in the reference (the 401 text, the invalid-transition text …) is used as
given there; messages the reference does not give are the fake's own guesses and say so below.

Routes, under ``/rest/api/2`` and ``/rest/api/3`` (``mode="dc"``: v2 only, v3 answers 404):

* ``POST /issue`` → 201 ``{id, key, self}``, keys ``<PROJECT>-<n>`` in order. 400 with Jira's
  ``{"errorMessages": [], "errors": {field: message}}`` for a missing summary, a label with a
  space, an unknown priority, project, issue type or user, a field the screen does not have.
  v3 wants ``description`` as an ADF document (checked node by node), v2 a string.
* ``GET /issue/{key|id}?fields=…`` (404 "Issue does not exist …"), ``PUT /issue/{key}`` (``fields``
  and ``update`` operations on labels, summary, description, comment) → 204.
* ``GET|POST /issue/{key}/comment`` (paged with ``startAt``/``maxResults``/``total``; POST → 201,
  ADF body on v3, text on v2); ``PUT /issue/{key}/assignee`` → 204 (``accountId`` on Cloud,
  ``name`` on DC, null unassigns).
* ``GET|POST /issue/{key}/transitions``: the configured workflow (default To Do (new) →
  In Progress (indeterminate) → Done (done) via transitions 11 "To Do", 21 "Start Progress",
  31 "Done", each offered from every status but its own target); POST → 204, 400 "Transition id
  'X' is not valid for this issue." Reaching a done status sets the resolution "Done".
* Cloud: ``GET|POST /search/jql`` with ``nextPageToken``/``isLast`` (the token key is absent on
  the last page; without ``fields`` only ids come back) while ``/search`` answers 410. DC:
  ``GET|POST /rest/api/2/search`` with ``startAt``/``total``; ``/search/jql`` is 404. Pages hold at
  most ``page_size`` issues, so paging is exercised. JQL: only ``project = "X" AND labels =
  "Y"`` with an optional ``ORDER BY created|key|id [ASC|DESC]`` (default newest first); issues
  younger than ``search_lag`` seconds are not found yet (Jira's index is eventually consistent).
* ``GET /myself``.

Checks in order: injected failures (``fail_next``), the rate limit (``rate_limit``), credentials
(Basic email:token or Bearer PAT; 401 "Client must be authenticated …", after ``captcha_after``
failed logins 403 with ``X-Seraph-LoginReason: AUTHENTICATION_DENIED``), then the route. A write
that succeeded may still be answered with a failure (``fail_after_commit``). Failures are a
status, ``"reset"`` (the TCP connection is reset with no answer at all; recorded in ``requests``
with status 0) or ``"hang"`` (no answer for ``hang_for`` seconds, then a 504 nobody is still
waiting for; ``stop()`` releases hung requests).

State: ``issues`` (key → FakeIssue: fields as sent, comments, status, assignee, labels),
``count_created()``, ``routes`` (per-route counters such as ``"POST issue"``). Helpers act as a
person in Jira (``add_issue``, ``comment_as``, ``set_status``) and ``send_webhook`` posts a
signed ``jira:issue_updated`` / ``comment_created`` delivery to our app.

    with JiraFake() as jira:
        r = httpx.post(jira.base_url(3) + "/issue", headers=jira.headers(), json={...})
        assert r.status_code == 201 and jira.count_created() == 1
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

import httpx
import orjson

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_EMAIL = "automation@example.com"
DEFAULT_TOKEN = "jira-api-token"
DEFAULT_PAT = "jira-personal-access-token"
AUTH_FAILED = "Client must be authenticated to access this resource."
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
ADF_REQUIRED = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
STRING_REQUIRED = "Operation value must be a string"  # the fake's guess at v2's wording
NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
Failure = int | Literal["reset", "hang"]
Mode = Literal["cloud", "dc"]

_PATH = re.compile(r"^/rest/api/(2|3)(/.*)?$")
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_JQL = re.compile(
    rf"^\s*project\s*=\s*(?P<project>{_QUOTED}|[A-Za-z0-9_]+)"
    rf"\s+AND\s+labels\s*=\s*(?P<label>{_QUOTED}|[^\s\"]+)"
    r"(?:\s+ORDER\s+BY\s+(?P<order>created|key|id)(?:\s+(?P<direction>ASC|DESC))?)?\s*$",
    re.IGNORECASE,
)
_CATEGORIES = {  # key → (id, name, colour), as Jira ships them
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
_INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "mediaInline"}
_LOOSE_BLOCKS = {  # accepted without looking inside: the connector never sends them
    "table",
    "mediaSingle",
    "mediaGroup",
    "expand",
    "nestedExpand",
    "blockCard",
    "embedCard",
    "taskList",
    "decisionList",
}


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str  # new | indeterminate | done


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to: str  # target status name
    sources: tuple[str, ...] | None = None  # statuses it is offered from; None: all but `to`
    screen: tuple[str, ...] = ()  # fields it may set (e.g. "resolution")


@dataclass(frozen=True)
class User:
    account_id: str  # Cloud
    name: str  # Server/DC user name
    display_name: str
    email: str


@dataclass(frozen=True)
class Priority:
    id: str
    name: str


DEFAULT_STATUSES = (
    Status("10000", "To Do", "new"),
    Status("3", "In Progress", "indeterminate"),
    Status("10001", "Done", "done"),
)
DEFAULT_TRANSITIONS = (
    Transition("11", "To Do", "To Do"),
    Transition("21", "Start Progress", "In Progress"),
    Transition("31", "Done", "Done"),
)
AUTOMATION = User("5b10a2844c20165700ede21a", "casefold", "Casefold Automation", DEFAULT_EMAIL)
ALICE = User("5b10a2844c20165700ede21g", "alice", "Alice", "alice@example.com")
BOB = User("5b10a2844c20165700ede21h", "bob", "Bob", "bob@example.com")
DEFAULT_USERS = (AUTOMATION, ALICE, BOB)  # the first one is the API caller
PRIORITIES = (
    Priority("1", "Highest"),
    Priority("2", "High"),
    Priority("3", "Medium"),
    Priority("4", "Low"),
    Priority("5", "Lowest"),
)
ISSUE_TYPES = {"10001": "Task", "10002": "Bug", "10003": "Incident"}


def _flatten(node: Any) -> str:
    """The text nodes of an ADF document, blocks on their own lines (the fake's own reading,
    independent of the connector's)."""
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text", ""))
        if node.get("type") == "hardBreak":
            return "\n"
        inner = "".join(_flatten(c) for c in node.get("content") or [])
        return inner + ("\n" if node.get("type") in ("paragraph", "codeBlock") else "")
    return ""


@dataclass
class FakeComment:
    id: str
    body: Any  # as sent: ADF dict (v3) or text (v2)
    author: User
    created: str
    updated: str

    @property
    def text(self) -> str:
        """The body as plain text, whichever API version sent it."""
        return _flatten(self.body).strip() if isinstance(self.body, dict) else str(self.body)


@dataclass
class FakeIssue:
    id: str
    key: str
    project: str
    fields: dict[str, Any]  # as sent (description in the caller's format), plus what Jira sets
    status: str
    assignee: str | None = None  # account id
    resolution: str | None = None
    comments: list[FakeComment] = field(default_factory=list)
    created: str = ""
    updated: str = ""
    created_at: float = 0.0  # monotonic, for the search lag
    version: int = 3  # API version it was created through

    @property
    def labels(self) -> list[str]:
        return list(self.fields.get("labels") or [])


@dataclass(frozen=True)
class _RateLimit:
    limit: int
    window: float
    retry_after: float | None
    reason: str


def _envelope(messages: Sequence[str] = (), errors: Mapping[str, str] | None = None) -> dict:
    return {"errorMessages": list(messages), "errors": dict(errors or {})}


def _bad(errors: Mapping[str, str]) -> Reply:
    return Reply(400, _envelope((), errors))


def _now() -> str:
    """Jira's timestamp format, e.g. 2024-07-02T16:05:11.123+0000."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class JiraFake(FakeServer):
    name = "jira-fake"

    def __init__(
        self,
        *,
        mode: Mode = "cloud",
        email: str = DEFAULT_EMAIL,
        token: str = DEFAULT_TOKEN,
        pat: str | None = DEFAULT_PAT,
        projects: Iterable[str] = ("SEC",),
        page_size: int = 2,
        search_lag: float = 0.0,
        statuses: Sequence[Status] = DEFAULT_STATUSES,
        transitions: Sequence[Transition] = DEFAULT_TRANSITIONS,
        users: Sequence[User] = DEFAULT_USERS,
        hang_for: float = 10.0,
        captcha_after: int | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("cloud", "dc"):
            raise ValueError(f"mode is cloud or dc, not {mode!r}")
        self.mode: Mode = mode
        self.email, self.token, self.pat = email, token, pat
        self.projects = {key: str(10000 + n) for n, key in enumerate(projects)}
        self.page_size = page_size
        self.search_lag = search_lag
        self.statuses = {s.name: s for s in statuses}
        self.workflow = list(transitions)
        self.users = list(users)
        self.me = self.users[0]
        self.hang_for = hang_for
        self.captcha_after = captcha_after
        self.captcha_required = False
        self.issues: dict[str, FakeIssue] = {}
        self.routes: Counter[str] = Counter()
        self.webhooks_sent: list[dict[str, Any]] = []
        self._created = 0  # through the API
        self._next_id = 10042
        self._next_comment = 10100
        self._numbers: Counter[str] = Counter()  # project → last issue number
        self._failures: deque[tuple[Failure, float | None]] = deque()
        self._after_commit: deque[Failure] = deque()
        self._rate: _RateLimit | None = None
        self._hits: deque[float] = deque()
        self._failed_logins = 0
        self._release = threading.Event()

    # --- addresses and credentials -------------------------------------------------------------

    def base_url(self, version: int = 3) -> str:
        return f"{self.url}/rest/api/{version}"

    def basic(self) -> str:
        raw = f"{self.email}:{self.token}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def headers(self, bearer: bool = False) -> dict[str, str]:
        auth = f"Bearer {self.pat}" if bearer else self.basic()
        return {"Authorization": auth, "Accept": "application/json"}

    # --- chaos ---------------------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, status: Failure = 500, retry_after: float | None = None
    ) -> None:
        """Answer the next `count` requests with `status` before looking at them: a 429 carries
        the rate-limit headers (Retry-After only when `retry_after` is given), "reset" drops the
        connection, "hang" answers nothing for `hang_for` seconds."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def fail_after_commit(self, count: int = 1, status: Failure = 500) -> None:
        """Carry out the next `count` successful writes (POST/PUT), then answer with `status`
        (or reset / hang) instead of the success: the caller cannot know it worked."""
        with self._lock:
            self._after_commit.extend([status] * count)

    def rate_limit(
        self,
        limit: int | None,
        *,
        window: float = 60.0,
        retry_after: float | None = 5.0,
        reason: str = "jira-burst-based",
    ) -> None:
        """At most `limit` requests per `window` seconds, then 429 with Retry-After (None: left
        out, as Jira may), X-RateLimit-* and RateLimit-Reason. None lifts the limit."""
        with self._lock:
            self._rate = None if limit is None else _RateLimit(limit, window, retry_after, reason)
            self._hits.clear()

    def stop(self) -> None:
        self._release.set()  # hung requests answer now, so the server can shut down
        super().stop()
        self._release = threading.Event()

    # --- state ---------------------------------------------------------------------------------

    def count_created(self) -> int:
        """Issues created through the API (not by add_issue)."""
        with self._lock:
            return self._created

    def calls(self, route: str) -> int:
        """Requests on a route, failed ones included, e.g. calls("POST issue")."""
        with self._lock:
            return self.routes[route]

    def issue(self, key: str) -> FakeIssue:
        with self._lock:
            return self.issues[key]

    def add_issue(
        self,
        project: str = "SEC",
        summary: str = "Created in Jira",
        *,
        labels: Sequence[str] = (),
        status: str | None = None,
        description: Any = None,
        age: float = 3600.0,
    ) -> FakeIssue:
        """An issue made by a person (not counted by count_created); `age` seconds old, so the
        search already finds it."""
        with self._lock:
            fields: dict[str, Any] = {
                "project": {"key": project},
                "issuetype": {"name": "Task"},
                "summary": summary,
                "labels": list(labels),
            }
            if description is not None:
                fields["description"] = description
            issue = self._store(project, fields, version=3)
            issue.created_at -= age
            if status is not None:
                issue.status = self.statuses[status].name
            return issue

    def comment_as(self, key: str, body: Any, *, user: User = ALICE) -> FakeComment:
        """A comment by a person: `body` text or ADF."""
        with self._lock:
            issue = self.issues[key]
            comment = self._comment(issue, body, user)
            return comment

    def set_status(self, key: str, status: str) -> None:
        """Move an issue as a person would (no transition check)."""
        with self._lock:
            issue = self.issues[key]
            self._move(issue, self.statuses[status])

    # --- webhooks ------------------------------------------------------------------------------

    def send_webhook(
        self,
        url: str,
        event: str,
        issue_key: str,
        *,
        secret: str | None,
        changes: Mapping[str, tuple[str | None, str | None]] | None = None,
        comment: str | None = None,
        user: User | str | None = None,
        identifier: str | None = None,
        retry: int = 0,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """POST a Jira Cloud delivery (§4.8) for `issue_key` to `url`.

        `event`: "jira:issue_updated", "jira:issue_created", "comment_created",
        "comment_updated". `changes` fills the changelog: {"status": ("In Progress", "Done")}.
        `comment` is the comment's text; with jira:issue_updated it makes an "issue_commented"
        event. `user` (default Alice; a User or an account id) is who acted: top-level `user`
        on issue events, the comment's author on comment events (those have no `user`, as on
        Jira). Signed with `X-Hub-Signature: sha256=…` when `secret` is given. The issue's
        fields come from the fake's state in REST v2 form, as Jira's webhooks send them."""
        body, headers = self.webhook_request(
            event,
            issue_key,
            secret=secret,
            changes=changes,
            comment=comment,
            user=user,
            identifier=identifier,
            retry=retry,
        )
        return self._deliver(url, body, headers, timeout)

    def webhook_request(
        self,
        event: str,
        issue_key: str,
        *,
        secret: str | None,
        changes: Mapping[str, tuple[str | None, str | None]] | None = None,
        comment: str | None = None,
        user: User | str | None = None,
        identifier: str | None = None,
        retry: int = 0,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers `send_webhook` would POST (for an in-process test client)."""
        with self._lock:
            actor = self._user(user)
            payload = self._webhook_payload(event, issue_key, actor, changes, comment)
        body = orjson.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Atlassian Webhook HTTP Client",
            "X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4()),
            "X-Atlassian-Webhook-Retry": str(retry),
            "X-Atlassian-Webhook-Flow": "Primary",
        }
        if secret:
            headers["X-Hub-Signature"] = "sha256=" + _sign(secret, body)
        return body, headers

    def redeliver(
        self, response: httpx.Response, *, retry: int | None = None, timeout: float = 10.0
    ) -> httpx.Response:
        """Jira's retry of a delivery: the same body, signature and identifier, the retry
        count one higher (or `retry`)."""
        sent = response.request
        headers = httpx.Headers(
            {k: v for k, v in sent.headers.items() if k.lower() not in _HOP_HEADERS}
        )
        count = int(headers.get("x-atlassian-webhook-retry", "0"))
        headers["X-Atlassian-Webhook-Retry"] = str(count + 1 if retry is None else retry)
        return self._deliver(str(sent.url), sent.content, headers, timeout)

    def _deliver(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> httpx.Response:
        sent = httpx.Headers(headers)
        response = httpx.post(url, content=body, headers=sent, timeout=timeout)
        with self._lock:
            self.webhooks_sent.append(
                {
                    "identifier": sent["x-atlassian-webhook-identifier"],
                    "retry": int(sent["x-atlassian-webhook-retry"]),
                    "payload": orjson.loads(body),
                    "status": response.status_code,
                }
            )
        return response

    def _webhook_payload(
        self,
        event: str,
        key: str,
        actor: User,
        changes: Mapping[str, tuple[str | None, str | None]] | None,
        comment: str | None,
    ) -> dict[str, Any]:
        issue = self.issues.get(key)
        stamp = int(time.time() * 1000)
        if issue is not None:
            summary = self._issue_json(issue, 2, None)
            keep = ("summary", "labels", "status", "resolution", "priority", "assignee", "updated")
            fields = {k: summary["fields"].get(k) for k in keep}
            ident = issue.id
        else:  # an issue the fake never saw: enough for a receiver to go and fetch it
            ident = "0"
            fields = {"summary": "", "labels": [], "status": self._status_json(self._initial(), 2)}
        issue_json = {
            "id": ident,
            "self": f"{self.url}/rest/api/2/issue/{ident}",
            "key": key,
            "fields": fields,
        }
        payload: dict[str, Any] = {"timestamp": stamp, "webhookEvent": event}
        comment_json = None
        if comment is not None:
            # The delivery of a comment made in the fake (comment_as) carries that comment's id,
            # as Jira's does; otherwise it stands for a comment made elsewhere.
            existing = [c for c in issue.comments if c.text == comment] if issue else []
            if existing:
                comment_id = existing[-1].id
            else:
                self._next_comment += 1
                comment_id = str(self._next_comment)
            now = _now()
            comment_json = {
                "self": f"{self.url}/rest/api/2/issue/{ident}/comment/{comment_id}",
                "id": comment_id,
                "author": self._user_json(actor, 2),
                "body": comment,
                "updateAuthor": self._user_json(actor, 2),
                "created": now,
                "updated": now,
                "jsdPublic": True,
            }
        if event.startswith("comment_"):
            payload["comment"] = comment_json or {}
            payload["issue"] = issue_json
            return payload
        payload["issue_event_type_name"] = (
            "issue_commented"
            if comment_json
            else "issue_created"
            if event == "jira:issue_created"
            else "issue_generic"
        )
        payload["user"] = self._user_json(actor, 2) | {"timeZone": "Europe/Oslo"}
        payload["issue"] = issue_json
        items = [self._change_item(name, old, new) for name, (old, new) in (changes or {}).items()]
        payload["changelog"] = {"id": str(10200 + len(self.webhooks_sent)), "items": items}
        if comment_json:
            payload["comment"] = comment_json
        return payload

    def _change_item(self, name: str, old: str | None, new: str | None) -> dict[str, Any]:
        def ident(value: str | None) -> str | None:
            if value is None:
                return None
            if name == "status" and value in self.statuses:
                return self.statuses[value].id
            return value

        return {
            "field": name,
            "fieldtype": "jira",
            "fieldId": name,
            "from": ident(old),
            "fromString": old,
            "to": ident(new),
            "toString": new,
        }

    # --- serving -------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        dropped = False

        async def guarded(message: dict[str, Any]) -> None:
            # Status 0 is the fake's "no answer": reset the connection instead of replying.
            nonlocal dropped
            if dropped:
                return
            if message["type"] == "http.response.start" and message["status"] == 0:
                dropped = True
                await self._reset(scope)
                return
            await send(message)

        await super().__call__(scope, receive, guarded)

    async def _reset(self, scope: dict[str, Any]) -> None:
        """Abort the request's TCP connection with an RST, so the client sees a reset (httpx
        ReadError / RemoteProtocolError) and not an HTTP answer."""
        server = self._server
        client = tuple(scope.get("client") or ())
        connections = list(server.server_state.connections) if server is not None else []
        for connection in connections:
            if getattr(connection, "client", None) != client:
                continue
            transport = connection.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends RST rather than FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            # Let uvicorn see the loss before the app returns, or it would log a missing reply.
            for _ in range(200):
                cycle = getattr(connection, "cycle", None)
                if cycle is None or cycle.disconnected:
                    break
                await asyncio.sleep(0.005)
            return
        raise RuntimeError(f"jira fake: no connection for {client} to reset")

    def handle(self, request: FakeRequest) -> Reply:
        route, version, parts = self._route(request)
        with self._lock:
            self.routes[route] += 1
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            return self._fail(*failure)
        with self._lock:
            refusal = self._limited() or self._authenticate(request.headers)
            if refusal is not None:
                return refusal
            reply = self._dispatch(request, version, parts)
            after = None
            writes = request.method in ("POST", "PUT", "DELETE")
            if 200 <= reply.status < 300 and writes and self._after_commit:
                after = self._after_commit.popleft()
            reply = self._with_rate_headers(reply)
        return reply if after is None else self._fail(after, None)

    def _fail(self, status: Failure, retry_after: float | None) -> Reply:
        if status == "reset":
            return Reply(0)
        if status == "hang":
            self._release.wait(self.hang_for)
            return Reply(504, _envelope(["The fake hung and gave up."]))
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if status == 429:
            reset = datetime.now(UTC) + timedelta(seconds=retry_after or 60)
            headers |= {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                "X-RateLimit-NearLimit": "true",
                "RateLimit-Reason": "jira-burst-based",
            }
            return Reply(429, _envelope(["Rate limit exceeded."]), headers)
        return Reply(int(status), _envelope(["Internal server error"]), headers)

    def _limited(self) -> Reply | None:
        rate = self._rate
        if rate is None:
            return None
        now = time.monotonic()
        while self._hits and now - self._hits[0] >= rate.window:
            self._hits.popleft()
        if len(self._hits) < rate.limit:
            self._hits.append(now)
            return None
        wait = rate.window - (now - self._hits[0])
        reset = datetime.now(UTC) + timedelta(seconds=wait)
        headers = {
            "X-RateLimit-Limit": str(rate.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
            "X-RateLimit-NearLimit": "true",
            "RateLimit-Reason": rate.reason,
        }
        if rate.retry_after is not None:
            headers["Retry-After"] = f"{rate.retry_after:g}"
        return Reply(429, _envelope(["Rate limit exceeded."]), headers)

    def _with_rate_headers(self, reply: Reply) -> Reply:
        rate = self._rate
        if rate is None:
            return reply
        remaining = max(rate.limit - len(self._hits), 0)
        reply.headers |= {
            "X-RateLimit-Limit": str(rate.limit),
            "X-RateLimit-Remaining": str(remaining),
        }
        if remaining <= rate.limit // 5:
            reply.headers["X-RateLimit-NearLimit"] = "true"
        return reply

    def _authenticate(self, headers: Mapping[str, str]) -> Reply | None:
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        good = False
        if scheme.lower() == "basic":
            try:
                user, _, secret = (
                    base64.b64decode(credential, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                user, secret = "", ""
            good = (user, secret) == (self.email, self.token)
        elif scheme.lower() == "bearer":
            good = self.pat is not None and hmac.compare_digest(credential, self.pat)
        if value and not good:
            self._failed_logins += 1
            if self.captcha_after is not None and self._failed_logins >= self.captcha_after:
                self.captcha_required = True
        if self.captcha_required and scheme.lower() == "basic":
            return Reply(
                403,
                _envelope(["CAPTCHA_CHALLENGE; login-url=" + self.url + "/login.jsp"]),
                {"X-Seraph-LoginReason": "AUTHENTICATION_DENIED"},
            )
        if not good:
            return Reply(401, _envelope([AUTH_FAILED]))
        self._failed_logins = 0
        return None

    # --- routing -------------------------------------------------------------------------------

    def _route(self, request: FakeRequest) -> tuple[str, int, list[str]]:
        match = _PATH.match(request.path)
        if match is None:
            return f"{request.method} other", 0, []
        version = int(match.group(1))
        parts = [unquote(p) for p in (match.group(2) or "").strip("/").split("/") if p]
        shape = {
            ("issue",): "issue",
            ("issue", "_"): "issue",
            ("issue", "_", "comment"): "comment",
            ("issue", "_", "transitions"): "transitions",
            ("issue", "_", "assignee"): "assignee",
            ("search",): "search",
            ("search", "jql"): "search/jql",
            ("myself",): "myself",
        }
        pattern = tuple("_" if n == 1 and parts[0] == "issue" else p for n, p in enumerate(parts))
        return f"{request.method} {shape.get(pattern, 'other')}", version, parts

    def _dispatch(self, request: FakeRequest, version: int, parts: list[str]) -> Reply:
        if version == 0 or (version == 3 and self.mode == "dc"):
            return self._no_route(request)
        method = request.method
        try:
            body = request.json() if request.body else None
        except orjson.JSONDecodeError:
            return Reply(400, _envelope(["Unexpected character in the JSON body."]))
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        match parts:
            case ["issue"] if method == "POST":
                return self._create(version, body)
            case ["issue", key] if method in ("GET", "PUT"):
                issue = self._find(key)
                if issue is None:
                    return Reply(404, _envelope([NOT_FOUND]))
                if method == "GET":
                    return Reply(200, self._issue_json(issue, version, _wanted(query)))
                return self._update(issue, version, body)
            case ["issue", key, "comment"] if method in ("GET", "POST"):
                issue = self._find(key)
                if issue is None:
                    return Reply(404, _envelope([NOT_FOUND]))
                if method == "GET":
                    return self._comments(issue, version, query)
                return self._add_comment(issue, version, body)
            case ["issue", key, "transitions"] if method in ("GET", "POST"):
                issue = self._find(key)
                if issue is None:
                    return Reply(404, _envelope([NOT_FOUND]))
                if method == "GET":
                    offered = [self._transition_json(t, version) for t in self._offered(issue)]
                    return Reply(200, {"expand": "transitions", "transitions": offered})
                return self._transition(issue, version, body)
            case ["issue", key, "assignee"] if method == "PUT":
                issue = self._find(key)
                if issue is None:
                    return Reply(404, _envelope([NOT_FOUND]))
                return self._assign(issue, version, body)
            case ["search", "jql"] if method in ("GET", "POST") and self.mode == "cloud":
                return self._search(version, query if method == "GET" else body, paged=False)
            case ["search"] if method in ("GET", "POST"):
                if self.mode == "cloud":
                    return Reply(410, _envelope([SEARCH_GONE]))
                return self._search(version, query if method == "GET" else body, paged=True)
            case ["myself"] if method == "GET":
                return Reply(200, self._user_json(self.me, version))
        return self._no_route(request)

    def _no_route(self, request: FakeRequest) -> Reply:
        # Jira's JAX-RS answer for a path it does not serve (not the issue envelope).
        return Reply(
            404, {"message": f"null for uri: {self.url}{request.path}", "status-code": 404}
        )

    def _find(self, key_or_id: str) -> FakeIssue | None:
        issue = self.issues.get(key_or_id.upper())
        if issue is None:
            issue = next((i for i in self.issues.values() if i.id == key_or_id), None)
        return issue

    # --- issues --------------------------------------------------------------------------------

    def _create(self, version: int, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
            return Reply(400, _envelope(["Issue fields are missing from the request."]))
        fields = body["fields"]
        errors: dict[str, str] = {}
        project = self._project(fields.get("project"))
        if project is None:
            errors["project"] = "Specify a valid project ID or key"
        if _type_name(fields.get("issuetype")) is None:
            errors["issuetype"] = "Specify a valid issue type"
        if not str(fields.get("summary") or "").strip():
            errors["summary"] = "You must specify a summary of the issue."
        errors |= self._check_fields(fields, version, creating=True)
        if errors:
            return _bad(errors)
        assert project is not None
        issue = self._store(project, dict(fields), version)
        if "assignee" in fields:
            issue.assignee = self._assignee(fields["assignee"], version)[0]
        self._created += 1
        self_url = f"{self.url}/rest/api/{version}/issue/{issue.id}"
        return Reply(201, {"id": issue.id, "key": issue.key, "self": self_url})

    def _store(self, project: str, fields: dict[str, Any], version: int) -> FakeIssue:
        self._numbers[project] += 1
        self._next_id += 1
        now = _now()
        issue = FakeIssue(
            id=str(self._next_id),
            key=f"{project}-{self._numbers[project]}",
            project=project,
            fields=fields,
            status=self._initial().name,
            created=now,
            updated=now,
            created_at=time.monotonic(),
            version=version,
        )
        self.issues[issue.key] = issue
        return issue

    def _check_fields(
        self, fields: Mapping[str, Any], version: int, *, creating: bool
    ) -> dict[str, str]:
        """Errors for the settable fields; the fake's screens know these and customfield_*."""
        errors: dict[str, str] = {}
        settable = {"summary", "description", "labels", "priority", "assignee"}
        if creating:
            settable |= {"project", "issuetype"}
        for name, value in fields.items():
            if name not in settable and not name.startswith("customfield_"):
                errors[name] = NOT_ON_SCREEN.format(name)
            elif name == "summary":
                problem = _summary_problem(value)
                if problem:
                    errors[name] = problem
            elif name == "description":
                problem = _body_problem(value, version, required=False)
                if problem:
                    errors[name] = problem
            elif name == "labels":
                problem = _labels_problem(value)
                if problem:
                    errors[name] = problem
            elif name == "priority":
                if value is not None and self._priority(value) is None:
                    errors[name] = _priority_problem(value)
            elif name == "assignee":
                problem = self._assignee(value, version)[1]
                if problem:
                    errors[name] = problem
        return errors

    def _update(self, issue: FakeIssue, version: int, body: Any) -> Reply:
        if not isinstance(body, dict) or not (body.get("fields") or body.get("update")):
            return Reply(400, _envelope(["No fields or update operations were given."]))
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        errors = self._check_fields(fields, version, creating=False)
        for name in set(fields) & set(update):
            errors[name] = f"Field '{name}' can be set by fields or by update, not both."
        errors |= self._check_operations(update, version)
        if errors:
            return _bad(errors)
        for name, value in fields.items():
            if name == "assignee":
                issue.assignee = self._assignee(value, version)[0]
            issue.fields[name] = value
        for name, ops in update.items():
            for op in ops:
                self._apply(issue, name, op)
        issue.updated = _now()
        return Reply(204)

    def _check_operations(self, update: Mapping[str, Any], version: int) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name, ops in update.items():
            if name not in ("labels", "summary", "description", "comment") or not isinstance(
                ops, list
            ):
                errors[name] = NOT_ON_SCREEN.format(name)
                continue
            for op in ops:
                verb, value = next(iter(op.items())) if isinstance(op, dict) and op else ("", None)
                problem: str | None
                if name == "labels" and verb in ("add", "remove"):
                    problem = _labels_problem([value])
                elif name == "labels" and verb == "set":
                    problem = _labels_problem(value)
                elif name == "summary" and verb == "set":
                    problem = _summary_problem(value)
                elif name == "description" and verb == "set":
                    problem = _body_problem(value, version, required=False)
                elif name == "comment" and verb == "add" and isinstance(value, dict):
                    problem = _body_problem(value.get("body"), version, required=True)
                else:
                    problem = f"Operation '{verb}' is not supported for field '{name}'."
                if problem:
                    errors[name] = problem
        return errors

    def _apply(self, issue: FakeIssue, name: str, op: Mapping[str, Any]) -> None:
        verb, value = next(iter(op.items()))
        if name == "labels":
            labels = issue.labels
            if verb == "add" and value not in labels:
                labels.append(value)
            elif verb == "remove":
                labels = [label for label in labels if label != value]
            elif verb == "set":
                labels = list(value)
            issue.fields["labels"] = labels
        elif name == "comment":
            self._comment(issue, value["body"], self.me)
        else:
            issue.fields[name] = value

    def _assign(self, issue: FakeIssue, version: int, body: Any) -> Reply:
        if not isinstance(body, dict):
            return Reply(400, _envelope(["The assignee is missing."]))
        account, problem = self._assignee(body, version)
        if problem:
            return Reply(400, _envelope([problem]))
        issue.assignee = account
        issue.fields["assignee"] = body
        issue.updated = _now()
        return Reply(204)

    def _assignee(self, value: Any, version: int) -> tuple[str | None, str | None]:
        """(account id or None, problem): Cloud names people by accountId, DC by name."""
        if value is None:
            return None, None
        if not isinstance(value, dict):
            return None, "The assignee must be an object."
        member = "accountId" if self.mode == "cloud" else "name"
        if member not in value:
            other = "name" if member == "accountId" else "accountId"
            if other in value:
                return None, f"'{other}' is not supported here; use '{member}'."
            return None, f"The assignee needs '{member}'."
        wanted = value[member]
        if wanted is None or wanted == "-1":  # null: unassigned; -1: the default (none here)
            return None, None
        for user in self.users:
            if wanted == (user.account_id if member == "accountId" else user.name):
                return user.account_id, None
        return None, f"User '{wanted}' does not exist."

    # --- comments ------------------------------------------------------------------------------

    def _comment(self, issue: FakeIssue, body: Any, author: User) -> FakeComment:
        self._next_comment += 1
        now = _now()
        comment = FakeComment(str(self._next_comment), body, author, now, now)
        issue.comments.append(comment)
        issue.updated = now
        return comment

    def _add_comment(self, issue: FakeIssue, version: int, body: Any) -> Reply:
        value = body.get("body") if isinstance(body, dict) else None
        problem = _body_problem(value, version, required=True)
        if problem:
            return _bad({"comment": problem})
        comment = self._comment(issue, value, self.me)
        return Reply(201, self._comment_json(issue, comment, version))

    def _comments(self, issue: FakeIssue, version: int, query: Mapping[str, str]) -> Reply:
        start, size = _int(query.get("startAt"), 0), _int(query.get("maxResults"), 50)
        size = max(1, min(size, self.page_size))
        comments = list(issue.comments)
        if query.get("orderBy", "created").startswith("-"):
            comments.reverse()
        page = comments[start : start + size]
        return Reply(
            200,
            {
                "startAt": start,
                "maxResults": size,
                "total": len(comments),
                "comments": [self._comment_json(issue, c, version) for c in page],
            },
        )

    # --- workflow ------------------------------------------------------------------------------

    def _initial(self) -> Status:
        statuses = list(self.statuses.values())
        return next((s for s in statuses if s.category == "new"), statuses[0])

    def _offered(self, issue: FakeIssue) -> list[Transition]:
        return [
            t
            for t in self.workflow
            if t.to != issue.status and (t.sources is None or issue.status in t.sources)
        ]

    def _transition(self, issue: FakeIssue, version: int, body: Any) -> Reply:
        wanted = body.get("transition") if isinstance(body, dict) else None
        ident = str(wanted.get("id")) if isinstance(wanted, dict) and "id" in wanted else None
        if ident is None:
            return Reply(400, _envelope(["Missing 'transition' identifier"]))
        chosen = next((t for t in self._offered(issue) if t.id == ident), None)
        if chosen is None:
            return Reply(400, _envelope([f"Transition id '{ident}' is not valid for this issue."]))
        fields = body.get("fields") or {}
        errors = {n: NOT_ON_SCREEN.format(n) for n in fields if n not in chosen.screen}
        update = body.get("update") or {}
        errors |= {n: NOT_ON_SCREEN.format(n) for n in update if n != "comment"}
        comments = {"comment": update["comment"]} if "comment" in update else {}
        errors |= self._check_operations(comments, version)
        if errors:
            return _bad(errors)
        self._move(issue, self.statuses[chosen.to])
        resolution = fields.get("resolution")
        if isinstance(resolution, dict) and resolution.get("name"):
            issue.resolution = str(resolution["name"])
        for op in update.get("comment") or []:
            self._apply(issue, "comment", op)
        return Reply(204)

    def _move(self, issue: FakeIssue, status: Status) -> None:
        issue.status = status.name
        # Like the post-function of Jira's simplified workflows.
        issue.resolution = "Done" if status.category == "done" else None
        issue.updated = _now()

    # --- search --------------------------------------------------------------------------------

    def _search(self, version: int, params: Any, *, paged: bool) -> Reply:
        params = params if isinstance(params, dict) else {}
        jql = str(params.get("jql") or "")
        match = _JQL.match(jql)
        if match is None:
            message = (
                "Error in the JQL Query: the fake understands only "
                f'project = "X" AND labels = "Y" [ORDER BY created|key|id ASC|DESC], not: {jql}'
            )
            return Reply(400, _envelope([message]))
        project, label = _unquote(match["project"]), _unquote(match["label"])
        if project.upper() not in self.projects:
            message = f"The value '{project}' does not exist for the field 'project'."
            return Reply(400, _envelope([message]))
        now = time.monotonic()
        found = [
            i
            for i in self.issues.values()
            if i.project == project.upper()
            and label in i.labels
            and now - i.created_at >= self.search_lag
        ]
        order = (match["order"] or "created").lower()
        descending = (match["direction"] or ("DESC" if match["order"] is None else "ASC")).upper()
        found.sort(
            key=lambda i: (i.created_at, int(i.id)) if order == "created" else (0, int(i.id)),
            reverse=descending == "DESC",
        )
        fields = params.get("fields")
        if isinstance(fields, str):
            fields = [f for f in fields.split(",") if f]
        size = max(1, min(_int(params.get("maxResults"), 50), self.page_size))
        if paged:
            start = _int(params.get("startAt"), 0)
            wanted = None if not fields else _wanted({"fields": ",".join(fields)})
            page = found[start : start + size]
            return Reply(
                200,
                {
                    "expand": "names,schema",
                    "startAt": start,
                    "maxResults": size,
                    "total": len(found),
                    "issues": [self._issue_json(i, version, wanted) for i in page],
                },
            )
        token = params.get("nextPageToken")
        start = 0
        if token:
            start = _read_token(str(token), jql)
            if start is None:
                message = "The provided next page token is invalid or expired."
                return Reply(400, _envelope([message]))
        page = found[start : start + size]
        if fields:
            issues = [
                self._issue_json(i, version, _wanted({"fields": ",".join(fields)})) for i in page
            ]
        else:  # search/jql without `fields` gives ids only
            issues = [{"id": i.id} for i in page]
        result: dict[str, Any] = {"issues": issues}
        if start + size < len(found):
            result["nextPageToken"] = _make_token(start + size, jql)
            result["isLast"] = False
        else:
            result["isLast"] = True
        return Reply(200, result)

    # --- JSON shapes ---------------------------------------------------------------------------

    def _issue_json(
        self, issue: FakeIssue, version: int, wanted: set[str] | None
    ) -> dict[str, Any]:
        site = f"{self.url}/rest/api/{version}"
        status = self.statuses[issue.status]
        priority = (
            self._priority(issue.fields.get("priority")) if "priority" in issue.fields else None
        )
        project_id = self.projects.get(issue.project, "10000")
        type_name = _type_name(issue.fields.get("issuetype")) or "Task"
        type_id = next((i for i, n in ISSUE_TYPES.items() if n == type_name), "10001")
        assignee = next((u for u in self.users if u.account_id == issue.assignee), None)
        every: dict[str, Any] = {
            "summary": issue.fields.get("summary"),
            "description": _render(issue.fields.get("description"), version),
            "issuetype": {"self": f"{site}/issuetype/{type_id}", "id": type_id, "name": type_name},
            "project": {
                "self": f"{site}/project/{project_id}",
                "id": project_id,
                "key": issue.project,
                "name": issue.project,
                "projectTypeKey": "software",
            },
            "status": self._status_json(status, version),
            "labels": issue.labels,
            "priority": None
            if priority is None
            else {
                "self": f"{site}/priority/{priority.id}",
                "iconUrl": f"{self.url}/images/icons/priorities/{priority.name.lower()}.svg",
                "name": priority.name,
                "id": priority.id,
            },
            "resolution": None
            if issue.resolution is None
            else {"self": f"{site}/resolution/10000", "id": "10000", "name": issue.resolution},
            "assignee": None if assignee is None else self._user_json(assignee, version),
            "reporter": self._user_json(self.me, version),
            "created": issue.created,
            "updated": issue.updated,
            "comment": {
                "comments": [self._comment_json(issue, c, version) for c in issue.comments],
                "maxResults": len(issue.comments),
                "total": len(issue.comments),
                "startAt": 0,
            },
        }
        for name, value in issue.fields.items():
            if name.startswith("customfield_"):
                every[name] = value
        fields = {k: v for k, v in every.items() if wanted is None or k in wanted}
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog",
            "id": issue.id,
            "self": f"{site}/issue/{issue.id}",
            "key": issue.key,
            "fields": fields,
        }

    def _status_json(self, status: Status, version: int) -> dict[str, Any]:
        site = f"{self.url}/rest/api/{version}"
        number, name, colour = _CATEGORIES[status.category]
        return {
            "self": f"{site}/status/{status.id}",
            "description": "",
            "iconUrl": f"{self.url}/",
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": f"{site}/statuscategory/{number}",
                "id": number,
                "key": status.category,
                "colorName": colour,
                "name": name,
            },
        }

    def _transition_json(self, transition: Transition, version: int) -> dict[str, Any]:
        return {
            "id": transition.id,
            "name": transition.name,
            "to": self._status_json(self.statuses[transition.to], version),
            "hasScreen": bool(transition.screen),
            "isGlobal": transition.sources is None,
            "isInitial": False,
            "isAvailable": True,
            "isConditional": False,
            "isLooped": False,
        }

    def _comment_json(self, issue: FakeIssue, comment: FakeComment, version: int) -> dict[str, Any]:
        author = self._user_json(comment.author, version)
        return {
            "self": f"{self.url}/rest/api/{version}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "body": _render(comment.body, version),
            "updateAuthor": author,
            "created": comment.created,
            "updated": comment.updated,
            "jsdPublic": True,
        }

    def _user_json(self, user: User, version: int) -> dict[str, Any]:
        site = f"{self.url}/rest/api/{version}"
        if self.mode == "dc":
            return {
                "self": f"{site}/user?username={user.name}",
                "name": user.name,
                "key": user.name,
                "emailAddress": user.email,
                "displayName": user.display_name,
                "active": True,
            }
        return {
            "self": f"{site}/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "displayName": user.display_name,
            "active": True,
            "accountType": "atlassian",
        }

    def _user(self, user: User | str | None) -> User:
        if isinstance(user, User):
            return user
        if user is None:
            return next((u for u in self.users if u != self.me), self.me)
        found = next((u for u in self.users if user in (u.account_id, u.name)), None)
        return found or User(user, user, user, f"{user}@example.com")

    def _project(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        if value.get("key") in self.projects:
            return str(value["key"])
        return next((k for k, i in self.projects.items() if i == str(value.get("id"))), None)

    def _priority(self, value: Any) -> Priority | None:
        if not isinstance(value, dict):
            return None
        for priority in PRIORITIES:
            if value.get("name") == priority.name or str(value.get("id")) == priority.id:
                return priority
        return None


_HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding"}


def _sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _wanted(query: Mapping[str, Any]) -> set[str] | None:
    """The `fields` parameter: None (every field) when absent or *all / *navigable."""
    raw = query.get("fields")
    if not raw:
        return None
    names = {f.strip() for f in str(raw).split(",") if f.strip()}
    return None if names & {"*all", "*navigable"} else names


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _make_token(offset: int, jql: str) -> str:
    raw = f"{offset}:{hashlib.sha1(jql.encode()).hexdigest()[:12]}"
    return base64.b64encode(raw.encode()).decode()


def _read_token(token: str, jql: str) -> int | None:
    """The offset in a page token, None when it is not ours or was made for another query."""
    try:
        offset, _, digest = base64.b64decode(token, validate=True).decode().partition(":")
        if digest != hashlib.sha1(jql.encode()).hexdigest()[:12]:
            return None
        return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _type_name(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if value.get("name") in ISSUE_TYPES.values():
        return str(value["name"])
    return ISSUE_TYPES.get(str(value.get("id")))


def _summary_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "You must specify a summary of the issue."
    if "\n" in value or "\r" in value:
        return "The summary is invalid because it contains newline characters."
    if len(value) > 255:
        return "Summary must be less than 255 characters."
    return None


def _labels_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return "data was not an array"
    for label in value:
        if not isinstance(label, str) or not label:
            return "Labels must be non-empty strings."
        if any(c.isspace() for c in label):
            return f"The label '{label}' contains spaces which is invalid."
        if len(label) > 255:
            return "The label must not exceed 255 characters."
    return None


def _priority_problem(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        return f"Priority name '{value['name']}' is not valid"
    if isinstance(value, dict) and "id" in value:
        return f"Priority id '{value['id']}' is not valid"
    return "Could not find valid 'id' or 'name' in priority object."


def _body_problem(value: Any, version: int, *, required: bool) -> str | None:
    """v3 wants an ADF document, v2 a string (descriptions may be null; comments not)."""
    if value is None:
        return "Comment body can not be empty!" if required else None
    if version == 2:
        if not isinstance(value, str):
            return STRING_REQUIRED
        if required and not value.strip():
            return "Comment body can not be empty!"
        return None
    if not isinstance(value, dict):
        return ADF_REQUIRED
    problem = _adf_problem(value)
    if problem:
        return f"INVALID_INPUT: {problem}"
    if required and not value.get("content"):
        return "Comment body can not be empty!"
    return None


def _adf_problem(doc: Mapping[str, Any]) -> str | None:
    """What makes `doc` an invalid ADF document, checked as far as the connector's nodes go."""
    if doc.get("type") != "doc" or doc.get("version") != 1:
        return "the root must be {type: doc, version: 1}"
    return _blocks_problem(doc.get("content"), "doc")


def _blocks_problem(content: Any, parent: str) -> str | None:
    if not isinstance(content, list):
        return f"{parent}.content must be a list"
    for node in content:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            return f"a node of {parent} has no type"
        kind = node["type"]
        children = node.get("content", [])
        if kind in ("paragraph", "heading"):
            problem = _inline_problem(children, kind)
        elif kind == "codeBlock":
            if not isinstance(children, list):
                return "codeBlock.content must be a list"
            bad = [c for c in children if not isinstance(c, dict) or c.get("type") != "text"]
            if bad or any(c.get("marks") for c in children):
                return "codeBlock holds only text nodes without marks"
            problem = _inline_problem(children, kind)
        elif kind in ("bulletList", "orderedList"):
            items = children if isinstance(children, list) else []
            if not items or any(
                not isinstance(i, dict) or i.get("type") != "listItem" for i in items
            ):
                return f"{kind} holds listItem nodes"
            problem = next(
                (p for i in items if (p := _blocks_problem(i.get("content"), "listItem"))), None
            )
        elif kind in ("blockquote", "panel"):
            problem = _blocks_problem(children, kind)
        elif kind == "rule" or kind in _LOOSE_BLOCKS:
            problem = None
        elif kind in _INLINE:
            return f"{kind} is an inline node and cannot be a child of {parent}"
        else:
            return f"unknown node type {kind!r}"
        if problem:
            return problem
    return None


def _inline_problem(content: Any, parent: str) -> str | None:
    if not isinstance(content, list):
        return f"{parent}.content must be a list"
    for node in content:
        kind = node.get("type") if isinstance(node, dict) else None
        if kind not in _INLINE:
            return f"{kind!r} cannot be a child of {parent}"
        if kind == "text" and (not isinstance(node.get("text"), str) or not node["text"]):
            return "text nodes must have non-empty text"
        if kind == "mention" and not (node.get("attrs") or {}).get("id"):
            return "mention nodes need attrs.id"
    return None


def _render(body: Any, version: int) -> Any:
    """A stored description or comment in the format of the version asked: ADF on v3 (text is
    wrapped in paragraphs), wiki-ish text on v2 (ADF is flattened, code as {code})."""
    if body is None:
        return None
    if version == 3:
        if isinstance(body, dict):
            return body
        content = []
        for chunk in re.split(r"\n\s*\n", str(body)):
            nodes: list[dict[str, Any]] = []
            for n, line in enumerate(chunk.split("\n")):
                if n:
                    nodes.append({"type": "hardBreak"})
                if line:
                    nodes.append({"type": "text", "text": line})
            if nodes:
                content.append({"type": "paragraph", "content": nodes})
        return {"type": "doc", "version": 1, "content": content}
    if isinstance(body, str):
        return body
    return "\n\n".join(_wiki(n) for n in body.get("content") or [])


def _wiki(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    attrs = node.get("attrs") or {}
    children = node.get("content") or []
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        return f"[~accountid:{attrs.get('id')}]"
    if kind == "codeBlock":
        language = attrs.get("language")
        head = f"{{code:{language}}}" if language else "{code}"
        return head + "\n" + "".join(_wiki(c) for c in children) + "\n{code}"
    if kind in ("bulletList", "orderedList"):
        mark = "#" if kind == "orderedList" else "*"
        return "\n".join(
            f"{mark} " + "".join(_wiki(c) for c in item.get("content") or []) for item in children
        )
    joiner = "\n\n" if kind in ("blockquote", "panel", "listItem") else ""
    return joiner.join(_wiki(c) for c in children)
