"""The one HTTP layer every threat-intel and ticketing connector goes through.

A call gets a timeout; a timeout, a dropped connection or a 5xx is tried again after an
exponential back-off with jitter; a 429 is waited out when the provider says for how long
(Retry-After, seconds or an HTTP date) and that is short enough, otherwise it is reported as a
spent quota so the caller stops asking until the quota comes back. Every other answer (2xx, 404,
403 …) goes back to the connector, which knows what it means for its provider.

Connector base URLs come from the operator's settings, not from playbooks, so they are not
subject to the SSRF guard that `core.http_request` uses: a private OpenCTI or MISP is normal.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx


class ProviderError(Exception):
    """A provider could not give an answer. `retryable` tells the playbook runner to try later."""

    def __init__(
        self, provider: str, message: str, *, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status
        self.retryable = retryable


class QuotaExceeded(ProviderError):
    """The provider refused with 429 and no short Retry-After: its quota is spent for now."""

    def __init__(self, provider: str, message: str, retry_after: float | None) -> None:
        super().__init__(provider, message, status=429, retryable=False)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # in all, the first included
    backoff: float = 0.5  # seconds before the second attempt; doubles each time
    max_backoff: float = 8.0
    max_retry_after: float = 30.0  # a longer Retry-After means "quota spent", not "wait"
    timeout: float = 10.0

    def delay(self, attempt: int) -> float:
        """Sleep before attempt `attempt + 1` (attempt counts from 1); full jitter on top."""
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return base / 2 + random.uniform(0, base / 2)


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = (now or (lambda: datetime.now(UTC)))()
    return max(0.0, (when - current).total_seconds())


def short_body(response: httpx.Response, limit: int = 200) -> str:
    """The start of a response body for an error message, on one line."""
    try:
        text = response.text
    except Exception:  # undecodable bytes: say so rather than fail while reporting
        return "<binary body>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def json_body(provider: str, response: httpx.Response) -> Any:
    """The response's JSON, or a ProviderError saying the provider sent something else."""
    try:
        return response.json()
    except ValueError:
        raise ProviderError(
            provider,
            f"answered {response.status_code} with a body that is not JSON: {short_body(response)}",
            status=response.status_code,
        ) from None


def json_object(provider: str, response: httpx.Response, member: str) -> dict[str, Any]:
    """The object under `member` of a JSON answer (e.g. `data`), or a ProviderError."""
    body = json_body(provider, response)
    value = body.get(member) if isinstance(body, dict) else None
    if not isinstance(value, dict):
        raise ProviderError(
            provider,
            f"answered {response.status_code} without a {member} object: {short_body(response)}",
            status=response.status_code,
        )
    return value


def refused(
    provider: str, status: int, detail: str, *, secret: str | None = None, hint: str = ""
) -> ProviderError:
    """The error for an answer a connector cannot use. A credential the provider echoed back is
    masked, so it never reaches logs, step traces or cases."""
    if not hint and status in (401, 403):
        hint = "check the API key"
    message = f"answered {status}: {detail}" + (f" ({hint})" if hint else "")
    if secret:
        message = message.replace(secret, "***")
    return ProviderError(provider, message, status=status)


class ProviderHTTP:
    """Sends one provider's requests with its retry policy; thread-safe (httpx.Client is)."""

    def __init__(
        self,
        provider: str,
        client: httpx.Client,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.client = client
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.calls = 0  # requests that reached the wire, retries included

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        policy = self.policy
        last: str = "no attempt made"
        for attempt in range(1, policy.attempts + 1):
            wait: float | None = None
            try:
                self.calls += 1
                response = self.client.request(
                    method,
                    url,
                    headers=headers,
                    params=params,
                    json=json,
                    content=content,
                    timeout=policy.timeout,
                )
            except httpx.TimeoutException:
                last = f"no answer within {policy.timeout:g} s"
            except httpx.TransportError as exc:
                last = f"cannot reach {_origin(url)}: {type(exc).__name__}"
            else:
                if response.status_code == 429:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    if retry_after is None or retry_after > policy.max_retry_after:
                        raise QuotaExceeded(
                            self.provider,
                            f"rate limit or quota reached (429): {short_body(response)}",
                            retry_after,
                        )
                    last = f"rate limited (429), asked to wait {retry_after:g} s"
                    wait = retry_after
                elif response.status_code >= 500:
                    last = f"server error {response.status_code}: {short_body(response)}"
                else:
                    return response
            if attempt < policy.attempts:
                self.sleep(wait if wait is not None else policy.delay(attempt))
        if wait is not None:
            # The last answer was a 429 with a Retry-After: the caller (the outbox) waits that.
            raise QuotaExceeded(self.provider, f"{last} (after {policy.attempts} attempts)", wait)
        raise ProviderError(
            self.provider, f"{last} (after {policy.attempts} attempts)", retryable=True
        )


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
