"""ExtraHop Reveal(x) detections REST API (external-apis.md §3): search, read, and the ticket
tracking PATCH that links a detection to its Casefold case.

Auth is one of:

* Reveal(x) Enterprise (appliance): ``Authorization: ExtraHop apikey=<key>``;
* Reveal(x) 360: OAuth client credentials. ``POST /oauth2/token`` (form body) gives a bearer
  token that is cached until ``expires_in`` minus a margin, and fetched again once when the API
  answers 401 (a token revoked or expired early).

`base_url` is the console (``https://console.example.com``) or the tenant API host
(``https://tenant.api.cloud.extrahop.com``); a trailing ``/api/v1`` is tolerated.

Ticket tracking must be enabled on the ExtraHop side (Administration → Detection Tracking →
external ticketing system), otherwise the PATCH has no visible effect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from casefold.connectors.http import ProviderError, ProviderHTTP, json_body, refused, short_body

NAME = "extrahop"
STATUSES = frozenset({"new", "in_progress", "closed", "acknowledged"})
RESOLUTIONS = frozenset({"action_taken", "no_action_taken"})
MAX_LIMIT = 200  # XSOAR's cap on a search page; larger pages are not documented
DEFAULT_TOKEN_LIFETIME = 300.0  # seconds, when the token answer has no usable expires_in
TOKEN_MARGIN = 60.0  # renew this long before expiry (a tenth of short lifetimes instead)
MAX_POLL_PAGES = 50

# Casefold case status → ExtraHop detection status. Statuses absent here (unknown, other) have
# no ExtraHop counterpart: the detection's status is left as it is.
_CASE_STATUS = {
    "new": "new",
    "in_progress": "in_progress",
    "on_hold": "acknowledged",  # seen and parked: ExtraHop's "seen, follow up later"
    "resolved": "closed",
    "closed": "closed",
}
_CASE_STATUSES = frozenset(
    {"unknown", "new", "in_progress", "on_hold", "resolved", "closed", "other"}
)
# Resolution when the case gives no hint: a resolved case was worked and fixed; a case closed
# without being resolved needed nothing (false positive, duplicate, accepted risk).
_DEFAULT_RESOLUTION = {"resolved": "action_taken", "closed": "no_action_taken"}


class DetectionNotFound(ProviderError):
    """ExtraHop answered 404 for a detection id."""

    def __init__(self, detection_id: int) -> None:
        super().__init__(NAME, f"detection {detection_id} not found", status=404)
        self.detection_id = detection_id


class ExtraHop:
    name = NAME

    def __init__(
        self,
        http: ProviderHTTP,
        base_url: str,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if api_key and (client_id or client_secret):
            raise ValueError("give either api_key or client_id and client_secret, not both")
        if not api_key and not (client_id and client_secret):
            raise ValueError("give api_key, or both client_id and client_secret")
        self.http = http
        self.base_url = base_url.rstrip("/").removesuffix("/api/v1")
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()

    # --- the API ---------------------------------------------------------------------------

    def search(
        self,
        mod_time: int | None,
        *,
        limit: int = MAX_LIMIT,
        offset: int = 0,
        filter: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """One page of detections modified at or after `mod_time` (epoch ms), oldest change
        first. `filter` is ExtraHop's filter object (status, risk_score_min, categories…)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        body: dict[str, Any] = {
            "limit": limit,
            "offset": offset,
            # why: a total order on mod_time is what makes offset paging and the cursor sound
            "sort": [{"field": "mod_time", "direction": "asc"}],
        }
        if mod_time is not None:
            body["mod_time"] = mod_time
        if filter:
            body["filter"] = dict(filter)
        response = self._call("POST", "/api/v1/detections/search", json=body)
        if response.status_code != 200:
            raise self._refused(response)
        page = json_body(NAME, response)
        if not isinstance(page, list) or not all(isinstance(d, dict) for d in page):
            raise ProviderError(
                NAME,
                f"search answered 200 without an array of detections: {short_body(response)}",
                status=200,
            )
        return page

    def poll_since(
        self,
        mod_time_ms: int,
        seen: set[int],
        *,
        limit: int = MAX_LIMIT,
        filter: Mapping[str, Any] | None = None,
        max_pages: int = MAX_POLL_PAGES,
    ) -> tuple[list[dict[str, Any]], int]:
        """Detections changed since the cursor `mod_time_ms`, and the next cursor.

        `seen` holds the ids already delivered whose mod_time equals the cursor; it is updated
        in place to the new boundary, so keep it with the cursor between polls. A detection
        changed again later has a larger mod_time and is delivered again (as an update).

        Paging follows XSOAR's collector (sort by mod_time ascending; a page whose detections
        all share one mod_time is followed by offset) with one change: the next page starts AT
        the last mod_time rather than one past it, and `seen` skips the repeats. With one past
        it, detections sharing the last mod_time but falling on the next page would be lost.
        `max_pages` bounds one poll; the returned cursor resumes where it stopped.
        """
        delivered: list[dict[str, Any]] = []
        cursor, offset = mod_time_ms, 0
        high, at_high = mod_time_ms, set(seen)
        delivered_ids: set[int] = set()
        for _ in range(max_pages):
            page = self.search(cursor, limit=limit, offset=offset, filter=filter)
            for detection in page:
                ident, modified = _int(detection.get("id")), _int(detection.get("mod_time"))
                if ident is None:
                    continue  # why: without an id it can be neither deduplicated nor tracked
                if modified is not None and modified > high:
                    high, at_high = modified, set()
                if modified is None or modified < high:
                    # Out of order or undated: deliver once per poll, never move the cursor.
                    if ident in delivered_ids or ident in at_high:
                        continue
                elif ident in at_high:
                    continue
                else:
                    at_high.add(ident)
                delivered_ids.add(ident)
                delivered.append(detection)
            if len(page) < limit:
                break
            first, last = _int(page[0].get("mod_time")), _int(page[-1].get("mod_time"))
            if first is None or last is None or first == last or last <= cursor:
                offset += len(page)  # a block of one mod_time (or undated): page through it
            else:
                cursor, offset = last, 0
        seen.clear()
        seen.update(at_high)
        return delivered, high

    def get(self, detection_id: int) -> dict[str, Any]:
        """One detection; DetectionNotFound when ExtraHop has no such id."""
        response = self._call("GET", f"/api/v1/detections/{_detection_path(detection_id)}")
        if response.status_code == 404:
            raise DetectionNotFound(detection_id)
        if response.status_code != 200:
            raise self._refused(response)
        detection = json_body(NAME, response)
        if not isinstance(detection, dict):
            raise ProviderError(
                NAME, f"answered 200 without a detection object: {short_body(response)}"
            )
        return detection

    def update(
        self,
        detection_id: int,
        *,
        ticket_id: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        resolution: str | None = None,
    ) -> dict[str, Any]:
        """PATCH the ticket-tracking fields that are given; returns the body sent.

        Invalid values raise ValueError before anything is sent.
        """
        body = update_body(
            ticket_id=ticket_id, status=status, assignee=assignee, resolution=resolution
        )
        response = self._call(
            "PATCH", f"/api/v1/detections/{_detection_path(detection_id)}", json=body
        )
        if response.status_code == 404:
            raise DetectionNotFound(detection_id)
        if not 200 <= response.status_code < 300:  # 204 documented; any 2xx is a success
            raise self._refused(response)
        return body

    # --- plumbing --------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        url = self.base_url + path
        response = self.http.request(method, url, headers=self._headers(), json=json)
        if response.status_code == 401 and self.api_key is None:
            # why: the token can die before its announced expiry (revoked, server restart);
            # one fresh token settles that, a second 401 is a real credentials problem
            self._drop_token()
            response = self.http.request(method, url, headers=self._headers(), json=json)
        return response

    def _headers(self) -> dict[str, str]:
        if self.api_key is not None:
            credential = f"ExtraHop apikey={self.api_key}"
        else:
            credential = f"Bearer {self._bearer()}"
        return {"Authorization": credential, "Accept": "application/json"}

    def _bearer(self) -> str:
        with self._token_lock:  # why: concurrent callers share one token fetch
            if self._token is None or self.clock() >= self._token_expires:
                self._token, lifetime = self._fetch_token()
                margin = min(TOKEN_MARGIN, lifetime / 10)
                self._token_expires = self.clock() + lifetime - margin
            return self._token

    def _drop_token(self) -> None:
        with self._token_lock:
            self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id or "",
                "client_secret": self.client_secret or "",
            }
        )
        response = self.http.request(
            "POST",
            f"{self.base_url}/oauth2/token",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            content=form.encode(),
        )
        if response.status_code != 200:
            raise self._refused(response, hint="check the OAuth client id and secret")
        body = json_body(NAME, response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError(NAME, "the token answer has no access_token", status=200)
        return token, _lifetime(body.get("expires_in"))

    def _refused(self, response: httpx.Response, *, hint: str = "") -> ProviderError:
        detail = short_body(response)
        for secret in (self.api_key, self.client_secret, self._token):
            if secret:
                detail = detail.replace(secret, "***")
        if not hint and response.status_code in (401, 403):
            hint = "check the API key" if self.api_key else "check the OAuth client id and secret"
        return refused(NAME, response.status_code, detail, hint=hint)


def update_body(
    *,
    ticket_id: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    resolution: str | None = None,
) -> dict[str, Any]:
    """The PATCH body for the given fields; ValueError for anything ExtraHop would refuse."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}, got {status!r}")
    if resolution is not None:
        if resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution must be one of {', '.join(sorted(RESOLUTIONS))}, got {resolution!r}"
            )
        if status != "closed":
            raise ValueError("a resolution is only sent with status 'closed'")
    body: dict[str, Any] = {}
    for key, value in (("ticket_id", ticket_id), ("assignee", assignee)):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{key} must be a non-empty string, got {value!r}")
        body[key] = value.strip()
    if status is not None:
        body["status"] = status
    if resolution is not None:
        body["resolution"] = resolution
    if not body:
        raise ValueError("nothing to update: give ticket_id, status, assignee or resolution")
    return body


def detection_update_for(case_status: str, *, resolution_hint: str | None = None) -> dict[str, Any]:
    """The detection status (and resolution) that mirrors a Casefold case status.

    new → new, in_progress → in_progress, on_hold → acknowledged, resolved → closed with
    `resolution_hint` or action_taken, closed → closed with `resolution_hint` or no_action_taken,
    unknown / other → {} (no counterpart: leave the detection's status alone). The hint is
    ignored for statuses that do not close the detection. Pass the result to `ExtraHop.update`.
    """
    if case_status not in _CASE_STATUSES:
        raise ValueError(f"unknown case status {case_status!r}")
    if resolution_hint is not None and resolution_hint not in RESOLUTIONS:
        raise ValueError(
            f"resolution_hint must be one of {', '.join(sorted(RESOLUTIONS))} or None, "
            f"got {resolution_hint!r}"
        )
    status = _CASE_STATUS.get(case_status)
    if status is None:
        return {}
    if status != "closed":
        return {"status": status}
    return {"status": status, "resolution": resolution_hint or _DEFAULT_RESOLUTION[case_status]}


def ticket_url(template: str, ticket_id: str) -> str:
    """The ticket link ExtraHop shows: `template` with ``$ticket_id`` replaced (URL-quoted)."""
    if "$ticket_id" not in template:
        raise ValueError("the ticket URL template has no $ticket_id")
    return template.replace("$ticket_id", quote(ticket_id, safe=""))


def _detection_path(detection_id: int) -> str:
    if isinstance(detection_id, bool) or not isinstance(detection_id, int) or detection_id < 0:
        raise ValueError(f"detection id must be a non-negative integer, got {detection_id!r}")
    return str(detection_id)


def _lifetime(expires_in: Any) -> float:
    """Seconds a token lives; the default when expires_in is missing or nonsense."""
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in.strip()[:9])
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        if 0 < expires_in < float("inf"):
            return float(expires_in)
    return DEFAULT_TOKEN_LIFETIME


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
