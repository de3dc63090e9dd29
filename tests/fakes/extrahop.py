"""A fake ExtraHop Reveal(x) REST API, after external-apis.md §3 and the §10 checklist.

Both auth styles are accepted on every ``/api/v1`` route:

* ``Authorization: ExtraHop apikey=<key>`` (appliance; off when ``api_key=None``);
* ``Authorization: Bearer <token>`` with a token from ``POST /oauth2/token`` (Reveal(x) 360):
  form body ``grant_type=client_credentials`` plus the client id and secret as form fields or as
  HTTP Basic. Tokens die ``token_ttl`` seconds after issue on the fake's ``clock``; the answer's
  ``expires_in`` says ``token_ttl`` unless ``expires_in`` is given (to play a server whose tokens
  die before they announce).

Refusals are 401 ``{"error_message": ...}`` and never echo a credential.

Routes:

* ``POST /api/v1/detections/search``: a bare JSON array. Honours ``mod_time`` (modified at or
  after, epoch ms), ``filter`` (status, risk_score_min, categories, category, types, assignee,
  ticket_id, resolution), ``from``/``until`` (detection time), ``sort`` (default: id ascending;
  ties broken by id), ``offset`` and ``limit``. Unknown keys, bad types: 400.
* ``GET /api/v1/detections/{id}``: the detection, 404 for an unknown id.
* ``PATCH /api/v1/detections/{id}``: 204. Only ticket_id, status, assignee and resolution;
  status ∈ {new, in_progress, closed, acknowledged, null}, resolution ∈ {action_taken,
  no_action_taken, null} and only on a closed detection: 400 otherwise. Bumps ``mod_time``,
  records ``history[id]`` and the accepted body in ``patches``.
* ``GET /api/v1/extrahop`` and ``/api/v1/extrahop/version`` for connectivity checks.

Checks in order: injected failures (``fail_next``), then auth, then the route.

    with ExtraHopFake() as eh:  # holds the §3.3 example detection, id 997222
        r = httpx.get(f"{eh.url}/api/v1/detections/997222", headers=eh.apikey_headers())
        assert r.json()["title"] == "Rare SSH Port"
"""

from __future__ import annotations

import base64
import binascii
import copy
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from fakes.base import FakeRequest, FakeServer, Reply

DEFAULT_API_KEY = "eh-test-key"
DEFAULT_CLIENT_ID = "eh-client-id"
DEFAULT_CLIENT_SECRET = "eh-client-secret"
EXAMPLE_ID = 997222
VERSION = "9.6.0.1234"
STATUSES = frozenset({"new", "in_progress", "closed", "acknowledged"})
RESOLUTIONS = frozenset({"action_taken", "no_action_taken"})
PATCH_KEYS = frozenset({"ticket_id", "status", "assignee", "resolution"})
SEARCH_KEYS = frozenset({"filter", "limit", "offset", "from", "until", "mod_time", "sort"})
FILTER_KEYS = frozenset(
    {
        "assignee",
        "categories",
        "category",
        "resolution",
        "risk_score_min",
        "status",
        "ticket_id",
        "types",
    }
)
SORT_FIELDS = frozenset(
    {"id", "mod_time", "start_time", "end_time", "update_time", "risk_score", "create_time"}
)
DETECTIONS = "/api/v1/detections"

# external-apis.md §3.3, from XSOAR's ExtraHop_v2 fixtures.
EXAMPLE_DETECTION: dict[str, Any] = {
    "id": EXAMPLE_ID,
    "start_time": 1673508360001,
    "update_time": 1673514000000,
    "end_time": 1673508450000,
    "mod_time": 1673518450000,
    "create_time": None,
    "title": "Rare SSH Port",
    "description": (
        "[VMware A5F9B5](#/metrics/devices/6c078a2ea98c42378048f72636c371c8.005056a5f9b50000"
        "/overview?from=1673508360&interval_type=DT&until=1673508450) sent data on the following"
        " non-standard SSH port, SSH:7234. Devices across the network rarely establish SSH"
        " sessions on this port."
    ),
    "categories": ["sec.command", "sec.attack"],
    "risk_score": 60,
    "type": "rare_ssh_port",
    "recommended": False,
    "recommended_factors": [],
    "properties": {"ports": ["SSH:7234", "SSH:22"]},
    "participants": [
        {
            "object_type": "device",
            "object_id": 1904,
            "role": "victim",
            "external": False,
            "id": 1961151,
            "scanner_service": None,
            "endpoint": None,
            "username": None,
        },
        {
            "object_type": "ipaddr",
            "object_value": "1.2.3.4",
            "role": "offender",
            "external": True,
            "id": 1961152,
            "scanner_service": None,
            "endpoint": None,
            "username": None,
        },
    ],
    "ticket_id": "SEC-54799",
    "assignee": "admin",
    "status": "in_progress",
    "resolution": None,
    "mitre_tactics": [
        {
            "id": "TA0008",
            "name": "Lateral Movement",
            "url": "https://attack.mitre.org/tactics/TA0008",
        },
        {
            "id": "TA0011",
            "name": "Command and Control",
            "url": "https://attack.mitre.org/tactics/TA0011",
        },
    ],
    "mitre_techniques": [
        {
            "id": "T1021",
            "name": "Remote Services",
            "url": "https://attack.mitre.org/techniques/T1021",
            "legacy_ids": ["T1021"],
        },
        {
            "id": "T1571",
            "name": "Non-Standard Port",
            "url": "https://attack.mitre.org/techniques/T1571",
            "legacy_ids": ["T1065"],
        },
    ],
    "appliance_id": 0,
    "is_user_created": False,
    "url": "https://console.example.com/extrahop/#/detections/detail/997222",
}


def example_detection(**overrides: Any) -> dict[str, Any]:
    """A fresh deep copy of the §3.3 example with `overrides` applied (url follows the id)."""
    detection = copy.deepcopy(EXAMPLE_DETECTION)
    detection.update(copy.deepcopy(overrides))
    if "id" in overrides and "url" not in overrides:
        detection["url"] = (
            f"https://console.example.com/extrahop/#/detections/detail/{overrides['id']}"
        )
    return detection


def _error(message: str, **extra: Any) -> dict[str, Any]:
    return {"error_message": message, **extra}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ExtraHopFake(FakeServer):
    name = "extrahop-fake"

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_ttl: float = 600.0,
        expires_in: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] | None = None,
        canned: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.expires_in = expires_in
        self.clock = clock
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.detections: dict[int, dict[str, Any]] = {}
        self.history: dict[int, list[dict[str, Any]]] = {}  # id → [{mod_time, changes}]
        self.patches: list[tuple[int, dict[str, Any]]] = []  # accepted PATCH bodies
        self.search_bodies: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}  # token → expiry on `clock`
        self.tokens_issued = 0
        self._failures: deque[tuple[int, float | None]] = deque()
        if canned:
            self.add_detection()

    # --- configuration ---------------------------------------------------------------------

    def add_detection(
        self, detection: dict[str, Any] | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """Store a detection (default: the §3.3 example; `overrides` on top) and return a copy.

        Without an id in either, the example's id is used if free, else the next free one."""
        body = copy.deepcopy(detection) if detection is not None else example_detection()
        body.update(copy.deepcopy(overrides))
        with self._lock:
            if detection is None and "id" not in overrides and EXAMPLE_ID in self.detections:
                body["id"] = max(self.detections) + 1
                body["url"] = (
                    f"https://console.example.com/extrahop/#/detections/detail/{body['id']}"
                )
            self.detections[int(body["id"])] = body
            return copy.deepcopy(body)

    def add_detections(
        self, count: int, *, mod_time: int, step: int = 0, **overrides: Any
    ) -> list[int]:
        """`count` detections with new ids, mod_time `mod_time`, `mod_time + step`, …; their ids."""
        ids = []
        for n in range(count):
            with self._lock:
                ident = max(self.detections, default=EXAMPLE_ID - 1) + 1
            self.add_detection(id=ident, mod_time=mod_time + n * step, **overrides)
            ids.append(ident)
        return ids

    def detection(self, detection_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.detections[detection_id])

    def fail_next(
        self, count: int = 1, status: int = 500, *, retry_after: float | None = None
    ) -> None:
        """Answer the next `count` requests with `status` (429 with Retry-After if given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def expire_tokens(self) -> None:
        """Every issued token dies now (a revocation or a restarted tenant)."""
        with self._lock:
            self.tokens.clear()

    def apikey_headers(self) -> dict[str, str]:
        return {"Authorization": f"ExtraHop apikey={self.api_key}"}

    # --- counters --------------------------------------------------------------------------

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests]

    def auth_headers(self) -> list[str]:
        """The Authorization header of every API request (token requests excluded)."""
        with self._lock:
            return [
                r.request.headers.get("authorization", "")
                for r in self.requests
                if r.request.path.startswith("/api/")
            ]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        with self._lock:
            if self._failures:
                status, retry_after = self._failures.popleft()
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                message = "Too many requests" if status == 429 else "Internal server error"
                return Reply(status, _error(message), headers=headers)
            if request.path == "/oauth2/token":
                if request.method != "POST":
                    return Reply(405, _error("Method not allowed"))
                return self._token(request)
            if not request.path.startswith("/api/v1/"):
                return Reply(404, _error("Not found"))
            refusal = self._authenticate(request)
            if refusal is not None:
                return refusal
            return self._route(request)

    def _token(self, request: FakeRequest) -> Reply:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return Reply(400, {"error": "invalid_request", "error_message": "form body expected"})
        try:
            form = {
                k: v[0] for k, v in parse_qs(request.body.decode(), strict_parsing=False).items()
            }
        except UnicodeDecodeError:
            return Reply(400, {"error": "invalid_request", "error_message": "bad form body"})
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return Reply(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_message": "grant_type must be client_credentials",
                },
            )
        if client_id != self.client_id or client_secret != self.client_secret:
            return Reply(
                401, {"error": "invalid_client", "error_message": "Invalid client credentials"}
            )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + self.token_ttl
        self.tokens_issued += 1
        expires_in = self.expires_in if self.expires_in is not None else int(self.token_ttl)
        return Reply(200, {"access_token": token, "expires_in": expires_in, "token_type": "bearer"})

    def _authenticate(self, request: FakeRequest) -> Reply | None:
        header = request.headers.get("authorization", "").strip()
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if not header:
            return Reply(401, _error("Authorization header is missing"))
        if scheme.lower() == "extrahop":
            name, _, key = credential.partition("=")
            if (
                self.api_key is not None
                and name.strip().lower() == "apikey"
                and key == self.api_key
            ):
                return None
            return Reply(401, _error("Invalid API key"))
        if scheme.lower() == "bearer":
            expiry = self.tokens.get(credential)
            if expiry is None:
                return Reply(401, _error("Invalid access token"))
            if self.clock() >= expiry:
                del self.tokens[credential]
                return Reply(401, _error("The access token has expired"))
            return None
        return Reply(401, _error("Unsupported authorization scheme"))

    def _route(self, request: FakeRequest) -> Reply:
        path, method = request.path.rstrip("/"), request.method
        if path == "/api/v1/extrahop":
            return Reply(200, {"display_host": "console.example.com", "platform": "extrahop"})
        if path == "/api/v1/extrahop/version":
            return Reply(200, {"version": VERSION})
        if path == f"{DETECTIONS}/search":
            if method != "POST":
                return Reply(405, _error("Method not allowed"))
            return self._search(request)
        if path.startswith(DETECTIONS + "/"):
            ident = path[len(DETECTIONS) + 1 :]
            if not ident.isascii() or not ident.isdigit():
                return Reply(404, _error(f"Detection {ident} not found"))
            detection = self.detections.get(int(ident))
            if detection is None:
                return Reply(404, _error(f"Detection {ident} not found"))
            if method == "GET":
                return Reply(200, detection)
            if method == "PATCH":
                return self._patch(detection, request)
            return Reply(405, _error("Method not allowed"))
        return Reply(404, _error("Not found"))

    def _search(self, request: FakeRequest) -> Reply:
        try:
            body = request.json() or {}
        except ValueError:
            return Reply(400, _error("Request body is not valid JSON"))
        if not isinstance(body, dict):
            return Reply(400, _error("Request body must be an object"))
        self.search_bodies.append(copy.deepcopy(body))
        unknown = set(body) - SEARCH_KEYS
        if unknown:
            return Reply(400, _error(f"Unknown search field(s): {', '.join(sorted(unknown))}"))
        for key in ("limit", "offset", "from", "until", "mod_time"):
            if key in body and (not _is_int(body[key]) or body[key] < 0):
                return Reply(400, _error(f"{key} must be a non-negative integer"))
        if body.get("limit") == 0:
            return Reply(400, _error("limit must be positive"))
        filters = body.get("filter") or {}
        if not isinstance(filters, dict) or set(filters) - FILTER_KEYS:
            return Reply(400, _error("Invalid filter"))
        sort = body.get("sort") or []
        if not isinstance(sort, list) or not all(
            isinstance(s, dict)
            and s.get("field") in SORT_FIELDS
            and s.get("direction", "asc") in ("asc", "desc")
            for s in sort
        ):
            return Reply(400, _error("Invalid sort"))

        found = [d for d in self.detections.values() if _matches(d, body, filters)]
        found.sort(key=lambda d: d["id"])
        for rule in reversed(sort):  # stable sorts, last key first
            field = rule["field"]
            found.sort(
                key=lambda d, f=field: (d.get(f) is not None, d.get(f) or 0),
                reverse=rule.get("direction", "asc") == "desc",
            )
        offset = body.get("offset", 0)
        limit = body.get("limit")
        page = found[offset:] if limit is None else found[offset : offset + limit]
        return Reply(200, page)

    def _patch(self, detection: dict[str, Any], request: FakeRequest) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return Reply(400, _error("Request body is not valid JSON"))
        if not isinstance(body, dict) or not body:
            return Reply(400, _error("Request body must be a non-empty object"))
        unknown = set(body) - PATCH_KEYS
        if unknown:
            return Reply(400, _error(f"Unknown field(s): {', '.join(sorted(unknown))}"))
        for key in ("ticket_id", "assignee"):
            if key in body and body[key] is not None and not isinstance(body[key], str):
                return Reply(400, _error(f"{key} must be a string"))
        if "status" in body and body["status"] is not None and body["status"] not in STATUSES:
            return Reply(400, _error(f"Invalid status: {body['status']}"))
        resolution = body.get("resolution")
        if resolution is not None and resolution not in RESOLUTIONS:
            return Reply(400, _error(f"Invalid resolution: {resolution}"))
        status = body.get("status", detection.get("status"))
        if resolution is not None and status != "closed":
            return Reply(400, _error("A resolution can only be set on a closed detection"))
        detection.update(body)
        if detection.get("status") != "closed":
            detection["resolution"] = None  # why: reopening drops the closing resolution
        old = detection.get("mod_time")
        detection["mod_time"] = max(self.now_ms(), (old + 1) if _is_int(old) else 0)
        self.history.setdefault(detection["id"], []).append(
            {"mod_time": detection["mod_time"], "changes": copy.deepcopy(body)}
        )
        self.patches.append((detection["id"], copy.deepcopy(body)))
        return Reply(204)


def _matches(detection: dict[str, Any], body: dict[str, Any], filters: dict[str, Any]) -> bool:
    def listed(key: str) -> list[Any]:
        value = filters[key]
        return value if isinstance(value, list) else [value]

    mod_time = body.get("mod_time")
    if mod_time is not None and (detection.get("mod_time") or 0) < mod_time:
        return False
    since = body.get("from")
    if since and (detection.get("end_time") or detection.get("start_time") or 0) < since:
        return False
    until = body.get("until")
    if until and (detection.get("start_time") or 0) > until:
        return False
    for key in ("status", "assignee", "ticket_id", "resolution"):
        if key in filters and detection.get(key) not in listed(key):
            return False
    if "types" in filters and detection.get("type") not in listed("types"):
        return False
    categories = detection.get("categories") or []
    if "categories" in filters and not set(listed("categories")) & set(categories):
        return False
    if "category" in filters and filters["category"] not in categories:
        return False
    minimum = filters.get("risk_score_min")
    if minimum is not None and (detection.get("risk_score") or 0) < minimum:
        return False
    return True
