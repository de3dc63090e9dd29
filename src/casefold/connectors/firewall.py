"""A generic firewall HTTP API: block and unblock an IP with operator-configured requests.

Firewalls and their management APIs differ in paths and bodies, not in the idea. A typical one
(the shape of the user's own AR script) is `POST {api}/rules` with
`{"action": "block", "source": "{ip}", "duration": "{ttl}", "reason": "{reason}"}` and
`DELETE {api}/rules/{ip}`, authenticated with `Authorization: Bearer <token>`.

Placeholders `{ip}`, `{ttl}` and `{reason}` are replaced in the URLs and in the string values of
a JSON body template, by an explicit replacer: no eval, no str.format, one pass (a reason that
contains `{ip}` stays as written). A string value that is exactly one placeholder takes the
value's JSON type, so `"{ttl}"` becomes a number (or null without a TTL).

Blocking is idempotent: 409 ("already blocked") counts as done, and so does 404 ("not blocked")
on unblock; that also makes the retried POST after a 5xx safe.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any

import httpx
import orjson

from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    QuotaExceeded,
    refused,
    short_body,
)

NAME = "firewall"
PLACEHOLDERS = ("ip", "ttl", "reason")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _check_placeholders(text: str, where: str) -> None:
    # Catch typos such as {IP} or {src} when configured, not when the first block fails.
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{name}}} in {where}; use {', '.join(PLACEHOLDERS)}"
            )


def _parse_template(template: dict[str, Any] | str | None, where: str) -> Any:
    if template is None:
        return None
    if isinstance(template, str):
        try:
            template = orjson.loads(template)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{where} is not JSON: {exc}") from None
    if not isinstance(template, dict | list):
        raise ValueError(f"{where} must be a JSON object or array")

    def walk(node: Any) -> None:
        if isinstance(node, str):
            _check_placeholders(node, where)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(template)
    return template


def render_text(text: str, values: dict[str, Any]) -> str:
    """`text` with every known placeholder replaced by its value as a string (None → "")."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(replace, text)


def render_template(node: Any, values: dict[str, Any]) -> Any:
    """A copy of a parsed JSON template with placeholders replaced in string values only."""
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]  # keeps the JSON type: a TTL stays a number
        return render_text(node, values)
    if isinstance(node, dict):
        return {key: render_template(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [render_template(value, values) for value in node]
    return node


def _url_values(values: dict[str, Any]) -> dict[str, Any]:
    # Percent-encode everything, "/" included, so a value cannot change the URL's path or query.
    return {
        k: None if v is None else urllib.parse.quote(str(v), safe="") for k, v in values.items()
    }


class FirewallAPI:
    """Blocks and unblocks IPs through a firewall's HTTP API, as configured by the operator.

    `auth_header` is the whole Authorization value (e.g. "Bearer <token>"); it and the values of
    `headers` are masked in error messages, since some APIs echo what they were sent.
    """

    def __init__(
        self,
        http: ProviderHTTP,
        *,
        block_url: str,
        unblock_url: str | None = None,
        method: str = "POST",
        unblock_method: str = "DELETE",
        body_template: dict[str, Any] | str | None = None,
        unblock_body_template: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        auth_header: str | None = None,
    ) -> None:
        for where, url in (("block_url", block_url), ("unblock_url", unblock_url)):
            if url is None:
                continue
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{where} must be an http(s) URL")
            _check_placeholders(url, where)
        self.http = http
        self.block_url = block_url
        self.unblock_url = unblock_url
        self.method = method.upper()
        self.unblock_method = unblock_method.upper()
        self.body_template = _parse_template(body_template, "body_template")
        self.unblock_body_template = _parse_template(unblock_body_template, "unblock_body_template")
        self._headers = {"accept": "application/json", **(headers or {})}
        if auth_header:
            self._headers["authorization"] = auth_header
        self._secrets = self._secret_parts(headers or {}, auth_header)

    @staticmethod
    def _secret_parts(headers: dict[str, str], auth_header: str | None) -> list[str]:
        parts = [v for k, v in headers.items() if k.lower() not in ("accept", "content-type")]
        if auth_header:
            parts.append(auth_header)
            scheme, _, credential = auth_header.partition(" ")
            parts.append(credential.strip() or scheme)  # a server may echo only the token
        # Longest first, so a token inside the full header value is masked in one piece.
        return sorted({p for p in parts if len(p) >= 4}, key=len, reverse=True)

    def block(self, ip: str, *, ttl: int | None = None, reason: str = "") -> dict[str, Any]:
        """Block `ip` (an address or a network). 409 means it already was: that is success.

        Returns `{"ip", "action": "block", "result": "blocked" | "already_blocked", "status"}`.
        """
        values = self._values(ip, ttl=ttl, reason=reason)
        response = self._send(self.method, self.block_url, self.body_template, values)
        return self._outcome(response, values["ip"], "block", 409, "blocked", "already_blocked")

    def unblock(self, ip: str) -> dict[str, Any]:
        """Lift the block on `ip`. 404 means there was none: that is success too.

        Returns `{"ip", "action": "unblock", "result": "unblocked" | "not_blocked", "status"}`.
        """
        if self.unblock_url is None:
            raise ValueError("this firewall has no unblock_url configured")
        values = self._values(ip, ttl=None, reason="")
        response = self._send(
            self.unblock_method, self.unblock_url, self.unblock_body_template, values
        )
        return self._outcome(response, values["ip"], "unblock", 404, "unblocked", "not_blocked")

    @staticmethod
    def _values(ip: str, *, ttl: int | None, reason: str) -> dict[str, Any]:
        # A parsed address cannot carry path, query or JSON tricks into the request.
        text = str(ip).strip()
        try:
            address = str(ipaddress.ip_address(text))
        except ValueError:
            try:
                address = str(ipaddress.ip_network(text))
            except ValueError:
                raise ValueError(f"{ip!r} is not an IP address or network") from None
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise ValueError("ttl must be a positive number of seconds, or None for no expiry")
        if not isinstance(reason, str):
            raise ValueError("reason must be a string")
        return {"ip": address, "ttl": ttl, "reason": reason}

    def _send(self, method: str, url: str, template: Any, values: dict[str, Any]) -> httpx.Response:
        body = None if template is None else render_template(template, values)
        try:
            return self.http.request(
                method, render_text(url, _url_values(values)), headers=self._headers, json=body
            )
        except ProviderError as exc:
            # The retry layer quotes the last 5xx/429 body, which may echo our credential.
            message = str(exc).removeprefix(f"{exc.provider}: ")
            if self._mask(message) == message:
                raise
            if isinstance(exc, QuotaExceeded):
                raise QuotaExceeded(exc.provider, self._mask(message), exc.retry_after) from None
            raise ProviderError(
                exc.provider, self._mask(message), status=exc.status, retryable=exc.retryable
            ) from None

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _outcome(
        self,
        response: httpx.Response,
        ip: str,
        action: str,
        idempotent_status: int,
        done: str,
        already: str,
    ) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            result = done
        elif status == idempotent_status:
            result = already
        else:
            detail = self._mask(f"{action} {ip}: {short_body(response)}")
            hint = "check the firewall API token" if status in (401, 403) else ""
            credential = self._secrets[0] if self._secrets else None
            raise refused(NAME, status, detail, secret=credential, hint=hint)
        return {"ip": ip, "action": action, "result": result, "status": status}
