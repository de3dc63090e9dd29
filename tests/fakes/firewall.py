"""A fake firewall management API, the kind a blocking playbook step calls.

Checks in order: injected failures (``fail_next``), the token, then the route.

* Every route wants ``Authorization: Bearer <token>``; otherwise 401
  ``{"error": "invalid token '<what was sent>'"}`` — it echoes the credential on purpose, as
  careless APIs do, so tests can check that clients mask it.
* ``POST /api/block`` with ``{"ip": str, "ttl": int | null, "reason": str}``: 201 with the
  entry, 409 ``{"error": "already blocked"}`` when it is, 400 for a bad body or IP.
* ``DELETE /api/block/{ip}``: 204, or 404 ``{"error": "not blocked"}``.
* ``GET /api/block``: 200 ``{"blocked": [entries]}``.

State lives in `blocked` (ip → ``{"ip", "ttl", "reason"}``).

    with FirewallFake() as fw:
        httpx.post(fw.url + "/api/block", json={"ip": "203.0.113.9"}, headers=fw.auth_headers())
        assert "203.0.113.9" in fw.blocked
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

import orjson

from fakes.base import FakeRequest, FakeServer, Reply


class FirewallFake(FakeServer):
    name = "firewall-fake"

    def __init__(self, *, token: str = "fw-T0ken-5ecret-42") -> None:
        super().__init__()
        self.token = token
        self.blocked: dict[str, dict[str, Any]] = {}
        self._failures: list[int] = []

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (the body echoes the credential)."""
        with self._lock:
            self._failures.extend([status] * count)

    def handle(self, request: FakeRequest) -> Reply:
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        sent = request.headers.get("authorization", "")
        if failure is not None:
            return Reply(failure, {"error": f"injected failure (request auth: {sent})"})
        scheme, _, token = sent.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.token:
            return Reply(401, {"error": f"invalid token {sent!r}"})
        if request.path == "/api/block":
            if request.method == "POST":
                return self._block(request)
            if request.method == "GET":
                with self._lock:
                    return Reply(200, {"blocked": list(self.blocked.values())})
            return Reply(405, {"error": "method not allowed"})
        if request.path.startswith("/api/block/"):
            if request.method != "DELETE":
                return Reply(405, {"error": "method not allowed"})
            ip = urllib.parse.unquote(request.path.removeprefix("/api/block/"))
            with self._lock:
                if self.blocked.pop(ip, None) is None:
                    return Reply(404, {"error": "not blocked"})
            return Reply(204)
        return Reply(404, {"error": "no such route"})

    def _block(self, request: FakeRequest) -> Reply:
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return Reply(400, {"error": "body is not JSON"})
        if not isinstance(body, dict) or not isinstance(body.get("ip"), str):
            return Reply(400, {"error": "expected {'ip': str, 'ttl': int, 'reason': str}"})
        try:
            ip = str(ipaddress.ip_network(body["ip"]))
        except ValueError:
            return Reply(400, {"error": f"invalid ip {body['ip']!r}"})
        if "/" in ip and ip.endswith(("/32", "/128")):
            ip = ip.rsplit("/", 1)[0]  # a single host is stored as a plain address
        ttl = body.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            return Reply(400, {"error": "ttl must be a positive integer or null"})
        entry = {"ip": ip, "ttl": ttl, "reason": str(body.get("reason") or "")}
        with self._lock:
            if ip in self.blocked:
                return Reply(409, {"error": "already blocked", "entry": self.blocked[ip]})
            self.blocked[ip] = entry
        return Reply(201, entry)
