"""Sending events back into Wazuh, where our rules (wazuh_side/rules) turn them into alerts.

Two ways in (wazuh.md §2.3 and §6):

* On the manager host, analysisd's queue socket: AF_UNIX datagrams framed
  `1:<location>:<json>`, or `1:[<id>] (<name>) <ip>-><location>:<json>` on behalf of an agent.
  analysisd splits at the first unescaped `:`, so `|` and `:` in the location part are escaped as
  `||` and `|:` (agent IPv6 addresses are full of colons).
* From elsewhere, the Wazuh API's `POST /events` (4.6+): a JWT from
  `POST /security/user/authenticate`, at most 100 events per request, 30 requests per minute.
  Those alerts always carry `location: API-Webhook` and agent 000.

A successful datagram `send` does not promise an alert: analysisd drops events when its input
queue is full.
"""

from __future__ import annotations

import base64
import errno
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    json_body,
    json_object,
    short_body,
)

NAME = "wazuh"
MAX_DATAGRAM = 65_535  # the framework's WazuhAnalysisdQueue.MAX_MSG_SIZE; analysisd takes 65 536
MAX_EVENTS_PER_REQUEST = 100
TOKEN_LIFETIME = 900.0  # auth_token_exp_timeout's default, when the JWT does not say
_HINT = "is wazuh-analysisd running? does casefold run as wazuh or root?"


def _escape(location: str) -> str:
    return location.replace("|", "||").replace(":", "|:")


def frame_event(event: dict[str, Any], *, location: str, agent: dict[str, Any] | None) -> bytes:
    """One queue datagram for `event`; ValueError when it cannot be framed or is too large.

    With an agent other than 000 the alert is attributed to it (agent.id/name/ip); its name
    defaults to "unknown" and its IP to "any", as Wazuh's integrations write it.
    """
    if not location or any(c in location for c in "\r\n\0"):
        raise ValueError("the location must be a non-empty single line")
    agent_id = _agent_id(agent)
    if agent is None or agent_id in (None, "000"):
        head = _escape(location)
    else:
        name = str(agent.get("name") or "unknown")
        ip = str(agent.get("ip") or "any")
        head = _escape(f"[{agent_id}] ({name}) {ip}->{location}")
        if any(c in head for c in "\r\n\0"):
            raise ValueError("the agent's name and IP must be single-line")
    try:
        payload = orjson.dumps(event)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"the event cannot be written as JSON: {exc}") from None
    datagram = b"1:" + head.encode() + b":" + payload
    if len(datagram) > MAX_DATAGRAM:
        raise ValueError(
            f"the event is {len(datagram)} bytes once framed; Wazuh takes at most {MAX_DATAGRAM}"
        )
    return datagram


def _agent_id(agent: dict[str, Any] | None) -> str | None:
    if agent is None:
        return None
    given = agent.get("id")
    if given is None or given == "":
        return None
    if isinstance(given, int):
        return f"{given:03d}"  # why: Wazuh ids are zero-padded strings; JSON may carry numbers
    return str(given)


class QueueSender:
    """Sends framed datagrams to analysisd's queue socket (one `sendto` per event)."""

    def __init__(
        self,
        socket_path: Path,
        *,
        busy_retries: int = 8,
        busy_wait: float = 0.005,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.busy_retries = busy_retries
        self.busy_wait = busy_wait  # doubles each retry: 8 retries wait about 1.3 s in all
        self.sleep = sleep

    def send(self, datagrams: list[bytes]) -> int:
        """Send every datagram; returns how many were sent. Raises ProviderError otherwise."""
        if not datagrams:
            return 0
        target = str(self.socket_path)
        sent = 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Non-blocking: a saturated analysisd answers EAGAIN at once instead of stalling us.
            sock.setblocking(False)
            for datagram in datagrams:
                self._send_one(sock, target, datagram, sent, len(datagrams))
                sent += 1
        return sent

    def _send_one(
        self, sock: socket.socket, target: str, datagram: bytes, sent: int, total: int
    ) -> None:
        progress = f" ({sent} of {total} events sent)" if sent else ""
        for attempt in range(self.busy_retries + 1):
            try:
                sock.sendto(datagram, target)
                return
            except (BlockingIOError, InterruptedError):
                pass  # the queue is full for now: analysisd catches up within milliseconds
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    pass
                elif exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
                    raise ProviderError(
                        NAME,
                        f"cannot send to the queue socket {target}: {exc.strerror}{progress}; "
                        + _HINT,
                        retryable=True,
                    ) from None
                elif exc.errno in (errno.EACCES, errno.EPERM):
                    raise ProviderError(
                        NAME,
                        f"no permission to write to the queue socket {target}{progress}; " + _HINT,
                    ) from None
                else:
                    raise ProviderError(
                        NAME,
                        f"cannot send to the queue socket {target}: {exc.strerror or exc}"
                        + progress,
                    ) from None
            if attempt < self.busy_retries:
                self.sleep(self.busy_wait * 2**attempt)
        raise ProviderError(
            NAME,
            f"the queue socket {target} stayed full (analysisd is saturated){progress}",
            retryable=True,
        )


class WazuhAPI:
    """The Wazuh API with its JWT login: event ingestion (`POST /events`), active responses
    (`PUT /active-response`) and agent status (`GET /agents`)."""

    def __init__(
        self,
        http: ProviderHTTP,
        base_url: str,
        username: str,
        password: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self.logins = 0

    def authenticate(self) -> str:
        """Log in (HTTP Basic) and keep the JWT until shortly before it expires."""
        credentials = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
        started = self._clock()
        response = self.http.request(
            "POST",
            f"{self.base_url}/security/user/authenticate",
            headers={"authorization": f"Basic {credentials}", "accept": "application/json"},
        )
        self.logins += 1
        if response.status_code == 401:
            raise ProviderError(
                NAME,
                f"the Wazuh API refused the login of user {self.username!r} (401): "
                f"{_detail(response)}; check the credentials",
                status=401,
            )
        if response.status_code != 200:
            raise ProviderError(
                NAME,
                f"login answered {response.status_code}: {_detail(response)}",
                status=response.status_code,
            )
        body = json_body(NAME, response)
        token = (body.get("data") or {}).get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError(NAME, f"login answer has no data.token: {short_body(response)}")
        lifetime = _token_lifetime(token)
        # Renew a little early, so a token never expires between our check and the request.
        self._renew_at = started + lifetime - min(60.0, lifetime / 10)
        self._token = token
        return token

    def send_events(self, events: list[str]) -> dict[str, Any]:
        """POST the events in batches of 100. Returns the totals over all batches.

        Every batch is sent even when one reports failed items, then a ProviderError names
        the first failure: the events accepted are in Wazuh already and must not be resent.
        """
        totals: dict[str, Any] = {
            "requests": 0,
            "total_affected_items": 0,
            "total_failed_items": 0,
            "failed_items": [],
            "message": "",
        }
        for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            batch = events[start : start + MAX_EVENTS_PER_REQUEST]
            answer = self._post_events(batch, accepted=totals["total_affected_items"])
            data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
            affected = data.get("total_affected_items")
            totals["requests"] += 1
            totals["total_affected_items"] += (
                affected if isinstance(affected, int) else len(data.get("affected_items") or [])
            )
            failed = data.get("failed_items") or []
            totals["failed_items"] += failed
            failed_count = data.get("total_failed_items")
            totals["total_failed_items"] += (
                failed_count if isinstance(failed_count, int) else len(failed)
            )
            totals["message"] = str(answer.get("message") or "")
        if totals["total_failed_items"]:
            raise ProviderError(
                NAME,
                f"{totals['total_failed_items']} of {len(events)} events were refused "
                f"({totals['total_affected_items']} accepted); first: "
                + _failure_reason(totals["failed_items"]),
            )
        return totals

    def _post_events(self, batch: list[str], *, accepted: int) -> dict[str, Any]:
        response = self._authorized("POST", "/events", json={"events": batch})
        progress = f" ({accepted} events accepted before)" if accepted else ""
        if response.status_code != 200:
            raise self._refusal(
                response, "POST /events", "send events", "event:ingest", progress=progress
            )
        body = json_body(NAME, response)
        if not isinstance(body, dict):
            raise ProviderError(NAME, f"POST /events answered {short_body(response)}")
        return body

    def active_response(
        self,
        command: str,
        *,
        agents: list[str],
        arguments: list[str] | None = None,
        alert: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run an active response on `agents` (`PUT /active-response`, wazuh.md §3.6).

        `command` is an ar.conf name (`<name><timeout>`, e.g. `firewall-drop600`) or `!<script>`
        in the agents' active-response/bin. `alert` reaches the script as `parameters.alert`;
        stock scripts read e.g. `srcip` from its `data`. An alert document (a dict whose `data`
        is an object, e.g. the triggering Wazuh alert) is sent as is; any other dict is taken as
        that `data` and wrapped. Returns
        `{"affected": [ids], "failed": [{"agent": id, "error": {...}}], "message": str}`:
        agents Wazuh could not reach are reported, not raised, so the caller decides what a
        partial success means. ValueError before sending for an empty agent list or agent 000.
        """
        if not isinstance(command, str) or not command.strip("!").strip():
            raise ValueError("the command must be an ar.conf name or !<script>")
        if any(c.isspace() or not c.isprintable() for c in command):
            raise ValueError("the command must be a single word")
        ids = _agent_ids(agents)
        if "000" in ids:
            # Wazuh only targets agents (id!=000): AR on the manager cannot go through the API.
            raise ValueError("agent 000 (the manager) cannot run active responses via the API")
        args = list(arguments or [])
        if not all(isinstance(a, str) for a in args):
            raise ValueError("the arguments must be strings")
        body: dict[str, Any] = {"command": command, "arguments": args}
        if alert is not None:
            if not isinstance(alert, dict):
                raise ValueError("the alert data must be an object")
            # Callers hold either the whole alert or just its data; Wazuh wants the former.
            body["alert"] = alert if isinstance(alert.get("data"), dict) else {"data": alert}
        response = self._authorized(
            "PUT", "/active-response", params={"agents_list": ",".join(ids)}, json=body
        )
        if response.status_code != 200:
            raise self._refusal(
                response, "PUT /active-response", "run active responses", "active-response:command"
            )
        data = json_object(NAME, response, "data")
        failed: list[dict[str, Any]] = []
        for item in data.get("failed_items") or []:
            if not isinstance(item, dict):
                continue
            error = item.get("error") if isinstance(item.get("error"), dict) else {}
            # Wazuh groups failures by error, each with the list of agent ids it hit.
            item_ids = item.get("id")
            for agent_id in item_ids if isinstance(item_ids, list) else [item_ids]:
                failed.append({"agent": str(agent_id), "error": dict(error)})
        return {
            "affected": [str(a) for a in data.get("affected_items") or []],
            "failed": failed,
            "message": str(_envelope_message(response)),
        }

    def agents_status(self, ids: list[str]) -> dict[str, str]:
        """Each known agent's status (active, disconnected, pending, never_connected).

        Agents Wazuh does not know are left out of the answer.
        """
        wanted = _agent_ids(ids)
        response = self._authorized(
            "GET",
            "/agents",
            params={"agents_list": ",".join(wanted), "select": "id,status", "limit": 500},
        )
        if response.status_code != 200:
            raise self._refusal(response, "GET /agents", "read agents", "agent:read")
        data = json_object(NAME, response, "data")
        return {
            str(item["id"]): str(item.get("status") or "unknown")
            for item in data.get("affected_items") or []
            if isinstance(item, dict) and item.get("id") is not None
        }

    def _authorized(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One API call with the JWT: logs in when needed, and once more on a 401."""
        fresh = False
        if self._token is None or self._clock() >= self._renew_at:
            self.authenticate()
            fresh = True
        while True:
            response = self.http.request(
                method,
                f"{self.base_url}{path}",
                headers={"authorization": f"Bearer {self._token}", "accept": "application/json"},
                params=params,
                json=json,
            )
            if response.status_code == 401 and not fresh:
                # Revoked, or expired early (the server's timeout may be shorter): log in once.
                self.authenticate()
                fresh = True
                continue
            return response

    def _refusal(
        self,
        response: httpx.Response,
        what: str,
        action: str,
        permission: str,
        *,
        progress: str = "",
    ) -> ProviderError:
        status = response.status_code
        detail = _detail(response)
        for secret in (self._password, self._token):
            if secret:
                detail = detail.replace(secret, "***")  # in case the server echoes one back
        if status == 401:
            message = (
                f"{what} refused a fresh token of user {self.username!r} (401): {detail}{progress}"
            )
        elif status == 403:
            message = (
                f"user {self.username!r} may not {action} (403, needs {permission}): "
                f"{detail}{progress}"
            )
        else:
            message = f"{what} answered {status}: {detail}{progress}"
        return ProviderError(NAME, message, status=status)


def _agent_ids(agents: list[str]) -> list[str]:
    """Wazuh's zero-padded agent ids, in order, without repeats; ValueError if there are none."""
    if isinstance(agents, str | bytes) or not agents:
        raise ValueError("name at least one agent id")
    ids: list[str] = []
    for agent in agents:
        text = f"{agent:03d}" if isinstance(agent, int) and not isinstance(agent, bool) else agent
        if not isinstance(text, str) or not text.isascii() or not text.isdigit():
            raise ValueError(f"{agent!r} is not a Wazuh agent id")
        text = text.zfill(3)
        if text not in ids:
            ids.append(text)
    return ids


def _envelope_message(response: httpx.Response) -> str:
    body = json_body(NAME, response)
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _token_lifetime(token: str) -> float:
    """exp - iat (or nbf) from the JWT's payload; the default when it cannot be read.

    Only a duration is taken from the token, so a clock skew with the manager does not matter.
    """
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        issued = claims.get("iat", claims.get("nbf"))
        lifetime = float(claims["exp"]) - float(issued)
    except (IndexError, ValueError, TypeError, KeyError, AttributeError, orjson.JSONDecodeError):
        return TOKEN_LIFETIME
    return lifetime if lifetime > 0 else TOKEN_LIFETIME


def _detail(response: httpx.Response) -> str:
    """The Wazuh error envelope's title/detail, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return short_body(response)
    if isinstance(body, dict) and (body.get("detail") or body.get("title")):
        return str(body.get("detail") or body.get("title"))
    return short_body(response)


def _failure_reason(failed_items: list[Any]) -> str:
    first = failed_items[0] if failed_items else None
    if not isinstance(first, dict):
        return "no reason given"
    error = first.get("error")
    if isinstance(error, dict):
        reason = str(error.get("message") or error)
        if error.get("code") is not None:
            reason += f" (code {error['code']})"
        return reason
    return str(error or first)
