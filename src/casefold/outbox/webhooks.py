"""Outbound webhooks, signed as Standard Webhooks, delivered through the outbox.

The message id (`webhook-id`) is the effect's idempotency key, the same on every attempt, so the
receiver can drop a redelivery; the timestamp is the attempt's own, as the spec asks. The URL is
checked against the SSRF guard when the playbook queues the post and again at delivery (a DNS
answer may have changed in between).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import orjson

from casefold.connectors.http import ProviderError, ProviderHTTP, refused, short_body
from casefold.errors import InvalidInputError
from casefold.outbox.worker import Attempt, Delivered
from casefold.signing import sign_standard


class WebhookDelivery:
    def __init__(
        self,
        http: ProviderHTTP,
        check_url: Callable[[str], None],
        secrets: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.http = http
        self.check_url = check_url
        self.secrets = secrets

    def __call__(self, attempt: Attempt) -> Delivered:
        payload = attempt.payload
        url = str(payload["url"])
        try:
            self.check_url(url)
        except InvalidInputError as exc:
            raise ProviderError("webhook", f"refused: {exc}") from None
        body = orjson.dumps(payload["body"])
        msg_id = str(payload["msg_id"])
        headers = {"content-type": "application/json", "webhook-id": msg_id}
        secret_name = payload.get("secret")
        if secret_name:
            secret = self.secrets.get(secret_name, {}).get("WEBHOOK_SECRET")
            if not secret:
                raise ProviderError(
                    "webhook", f"secret {secret_name}.WEBHOOK_SECRET is not configured"
                )
            timestamp = int(time.time())
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign_standard(secret, msg_id, timestamp, body)
        response = self.http.request("POST", url, headers=headers, content=body)
        if 200 <= response.status_code < 300:
            return Delivered({"status_code": response.status_code, "msg_id": msg_id})
        if response.status_code in (408, 409, 425):
            raise ProviderError(
                "webhook",
                f"answered {response.status_code}: {short_body(response)}",
                status=response.status_code,
                retryable=True,
            )
        raise refused("webhook", response.status_code, short_body(response))
