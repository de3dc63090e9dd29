"""Signatures of inbound (and our outbound) webhooks: GitHub's `X-Hub-Signature-256` and the
Standard Webhooks scheme (external-apis.md §7.1, §7.3).

Pure: no I/O, no logging. Every digest comparison goes through `hmac.compare_digest`, and no
message ever contains a secret, an expected digest or the received one, so an error can be logged
or returned to the sender as it is.

Secret rotation: every function takes one secret or a sequence of them. Verification passes when
any secret matches; `sign_standard` signs with all of them (the receiver needs only one to match).
An empty sequence or an empty secret is a configuration mistake and raises `ValueError`, never a
`SignatureError`: it must not look like the sender's fault.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from casefold.errors import AuthError

GITHUB_HEADER = "X-Hub-Signature-256"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"

WHSEC_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300.0  # seconds; what the Standard Webhooks libraries use

# Bounds on what we parse from headers: anything longer is not a valid value and would only cost
# work (and, for the id, end up as a stored idempotency key).
_MAX_ID_LENGTH = 256
_MAX_TIMESTAMP_DIGITS = 12
_MAX_SIGNATURE_ENTRIES = 16
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

Secrets = str | Sequence[str]


class SignatureError(AuthError):
    """The request's signature is missing, malformed, wrong or stale (HTTP 401).

    `reason` is safe to show the sender: it never contains a secret or a digest.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- GitHub ----------------------------------------------------------------------------------


def verify_github(secret: Secrets, body: bytes, header: str | None) -> None:
    """Check `X-Hub-Signature-256: sha256=<hex>` against HMAC-SHA256(secret, raw body).

    `body` must be the raw request bytes, before any JSON parsing. Raises SignatureError.
    """
    verify_hub_signature(secret, body, header, header_name=GITHUB_HEADER)


def verify_hub_signature(
    secret: Secrets, body: bytes, header: str | None, *, header_name: str
) -> None:
    """The `sha256=<hex>` HMAC-SHA256 scheme GitHub (X-Hub-Signature-256) and Jira's admin
    webhooks (X-Hub-Signature) share. Raises SignatureError naming `header_name`."""
    keys = [s.encode("utf-8") for s in _secret_list(secret)]
    if header is None or not header.strip():
        raise SignatureError(f"missing {header_name} header")
    scheme, sep, hex_digest = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        # why: the legacy sha1= scheme is deliberately not accepted
        raise SignatureError(f"{header_name} must use the sha256= scheme")
    received = _from_hex(hex_digest.strip())
    if received is None:
        raise SignatureError(f"{header_name} is not 64 hexadecimal digits")
    if not _any_match(received, (hmac.digest(key, body, hashlib.sha256) for key in keys)):
        raise SignatureError("signature does not match")


def sign_github(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body` (for tests and tools)."""
    _secret_list(secret)
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# --- Standard Webhooks -----------------------------------------------------------------------


def verify_standard(
    secret: Secrets,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Verify a Standard Webhooks request; return its `webhook-id` (the idempotency key).

    `headers` is looked up case-insensitively. The signed content is
    `{webhook-id}.{webhook-timestamp}.{raw body}`; `webhook-signature` is a space-separated list
    of `v1,<base64 HMAC-SHA256>` entries, any of which may match. Other versions (`v1a`, the
    ed25519 variant) are ignored. A timestamp more than `tolerance` seconds before or after `now`
    is refused, so a captured request cannot be replayed later; the caller still has to remember
    recent ids to stop replays inside the window.

    Secrets: `whsec_<base64>` uses the base64-decoded bytes as the HMAC key, as the spec says.
    A secret without that prefix is used as its UTF-8 bytes, *not* base64-decoded, for senders
    that take a plain shared string; add the prefix to a bare base64 secret to have it decoded.
    """
    keys = [_standard_key(s) for s in _secret_list(secret)]
    msg_id, timestamp, signatures = _standard_headers(headers)

    ts = _parse_timestamp(timestamp)
    # why: checked before the signature, like the reference libraries: it is the cheap test
    if abs(now - ts) > tolerance:
        raise SignatureError("timestamp outside the replay window")

    candidates = _v1_signatures(signatures)
    if not candidates:
        raise SignatureError(f"{STANDARD_SIGNATURE_HEADER} has no v1 signature")
    content = _signed_content(msg_id, timestamp, body)
    expected = [hmac.digest(key, content, hashlib.sha256) for key in keys]
    # why: every pair is compared (no early exit) so timing does not tell which entry is close
    matched = False
    for received in candidates:
        matched |= _any_match(received, expected)
    if not matched:
        raise SignatureError("signature does not match")
    return msg_id


def sign_standard(secret: Secrets, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for an outbound webhook: `v1,<base64>`.

    With several secrets (rotation), one entry per secret, space-separated, in the given order.
    """
    if not msg_id or any(c.isspace() for c in msg_id):
        raise ValueError("msg_id must be a non-empty string without whitespace")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer (unix seconds)")
    content = _signed_content(msg_id, str(timestamp), body)
    entries = []
    for s in _secret_list(secret):
        digest = hmac.digest(_standard_key(s), content, hashlib.sha256)
        entries.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(entries)


# --- helpers ---------------------------------------------------------------------------------


def _secret_list(secret: Secrets) -> list[str]:
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret configured")
    for s in secrets:
        if not isinstance(s, str) or not s:
            # why: an empty HMAC key "verifies" anything anyone can compute
            raise ValueError("webhook secrets must be non-empty strings")
    return secrets


def _standard_key(secret: str) -> bytes:
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode("utf-8")
    try:
        key = base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        # The message must not quote the secret: it may end up in a start-up log.
        raise ValueError("a whsec_ webhook secret is not valid base64") from None
    if not key:
        raise ValueError("a whsec_ webhook secret decodes to nothing")
    return key


def _standard_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    # why: a plain dict from a test or another framework may use any case; Starlette's Headers
    # already lower-cases, and then this is a straight copy.
    lowered = {str(k).lower(): v for k, v in headers.items()}
    names = (STANDARD_ID_HEADER, STANDARD_TIMESTAMP_HEADER, STANDARD_SIGNATURE_HEADER)
    values = [lowered.get(name) for name in names]
    missing = [n for n, v in zip(names, values, strict=True) if not isinstance(v, str) or not v]
    if missing:
        raise SignatureError("missing header(s): " + ", ".join(missing))
    msg_id, timestamp, signatures = (str(v) for v in values)
    if len(msg_id) > _MAX_ID_LENGTH:
        raise SignatureError(f"{STANDARD_ID_HEADER} is longer than {_MAX_ID_LENGTH} characters")
    return msg_id, timestamp, signatures


def _parse_timestamp(value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError(f"{STANDARD_TIMESTAMP_HEADER} is not unix seconds")
    return int(text)


def _v1_signatures(header: str) -> list[bytes]:
    """Decoded `v1` entries; malformed ones are skipped (another entry may still match)."""
    found: list[bytes] = []
    for entry in header.split()[:_MAX_SIGNATURE_ENTRIES]:
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(digest) == hashlib.sha256().digest_size:
            found.append(digest)
    return found


def _signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def _from_hex(text: str) -> bytes | None:
    # why: bytes.fromhex alone would also take spaces between the digits
    if len(text) != 2 * hashlib.sha256().digest_size or not all(c in _HEX_DIGITS for c in text):
        return None
    return bytes.fromhex(text)


def _any_match(received: bytes, expected: Iterable[bytes]) -> bool:
    matched = False
    for digest in expected:
        matched |= hmac.compare_digest(received, digest)
    return matched
