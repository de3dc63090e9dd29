"""Webhook signatures: GitHub's X-Hub-Signature-256 and Standard Webhooks (external-apis.md §7)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from casefold.errors import AuthError
from casefold.signing import (
    SignatureError,
    sign_github,
    sign_standard,
    verify_github,
    verify_standard,
)

# GitHub's documented test vector (§7.1).
GH_SECRET = "It's a Secret to Everybody"
GH_BODY = b"Hello, World!"
GH_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# The Standard Webhooks spec's test vector (§7.3).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def sw_headers(signature: str = SW_SIGNATURE, *, ts: int = SW_TS, msg_id: str = SW_ID):
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def reason(exc: pytest.ExceptionInfo[SignatureError]) -> str:
    return exc.value.reason


# --- GitHub ----------------------------------------------------------------------------------


def test_github_vector() -> None:
    verify_github(GH_SECRET, GH_BODY, GH_SIGNATURE)
    assert sign_github(GH_SECRET, GH_BODY) == GH_SIGNATURE


def test_github_accepts_upper_case_hex_and_scheme() -> None:
    scheme, digest = GH_SIGNATURE.split("=")
    verify_github(GH_SECRET, GH_BODY, f"{scheme.upper()}={digest.upper()}")


def test_signature_error_is_an_auth_error_for_401() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github(GH_SECRET, b"Hello, World?", GH_SIGNATURE)
    assert isinstance(exc.value, AuthError) and exc.value.forbidden is False
    assert reason(exc) == "signature does not match" == str(exc.value)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_github_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github(GH_SECRET, GH_BODY, header)
    assert reason(exc) == "missing X-Hub-Signature-256 header"


@pytest.mark.parametrize(
    "header",
    [
        "sha1=" + hashlib.sha1(GH_BODY).hexdigest(),  # legacy X-Hub-Signature
        GH_SIGNATURE.removeprefix("sha256="),  # no scheme at all
        "md5=" + "0" * 64,
    ],
)
def test_github_wrong_scheme(header: str) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github(GH_SECRET, GH_BODY, header)
    assert "sha256=" in reason(exc)


@pytest.mark.parametrize(
    "digest",
    [
        "zz" + GH_SIGNATURE[9:],  # not hex
        GH_SIGNATURE[7:-2],  # too short
        GH_SIGNATURE[7:] + "00",  # too long
        " ".join([GH_SIGNATURE[7:39], GH_SIGNATURE[39:71]]),  # spaces bytes.fromhex would take
        "é" * 64,
    ],
)
def test_github_bad_hex(digest: str) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github(GH_SECRET, GH_BODY, "sha256=" + digest)
    assert reason(exc) == "X-Hub-Signature-256 is not 64 hexadecimal digits"


def test_github_tampered_body_and_wrong_secret() -> None:
    for secret, body in ((GH_SECRET, GH_BODY + b" "), ("another secret", GH_BODY)):
        with pytest.raises(SignatureError, match="does not match"):
            verify_github(secret, body, GH_SIGNATURE)


def test_github_rotation_any_secret_matches() -> None:
    verify_github(["new secret", GH_SECRET], GH_BODY, GH_SIGNATURE)
    verify_github((GH_SECRET, "new secret"), GH_BODY, GH_SIGNATURE)
    with pytest.raises(SignatureError):
        verify_github(["new secret", "older secret"], GH_BODY, GH_SIGNATURE)


def test_errors_never_contain_secrets_or_digests() -> None:
    expected = hmac.new(b"x" * 20, GH_BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError) as exc:
        verify_github("x" * 20, GH_BODY, GH_SIGNATURE)
    text = str(exc.value)
    assert "x" * 20 not in text and expected not in text and GH_SIGNATURE[7:] not in text


@pytest.mark.parametrize("secret", ["", [], [GH_SECRET, ""]])
def test_empty_secret_is_a_configuration_error(secret: str | list[str]) -> None:
    with pytest.raises(ValueError, match="secret"):
        verify_github(secret, GH_BODY, GH_SIGNATURE)
    with pytest.raises(ValueError, match="secret"):
        verify_standard(secret, sw_headers(), SW_BODY, now=SW_TS)


# --- Standard Webhooks -----------------------------------------------------------------------


def test_standard_vector() -> None:
    assert verify_standard(SW_SECRET, sw_headers(), SW_BODY, now=SW_TS) == SW_ID
    assert sign_standard(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIGNATURE


def test_standard_headers_any_case() -> None:
    headers = {k.upper(): v for k, v in sw_headers().items()}
    assert verify_standard(SW_SECRET, headers, SW_BODY, now=SW_TS) == SW_ID


def test_standard_whsec_key_is_base64_decoded() -> None:
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    content = f"{SW_ID}.{SW_TS}.".encode() + SW_BODY
    expected = base64.b64encode(hmac.digest(key, content, hashlib.sha256)).decode()
    assert SW_SIGNATURE == "v1," + expected
    # The same secret without its prefix is taken as plain UTF-8 bytes: a different key.
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(SW_SECRET.removeprefix("whsec_"), sw_headers(), SW_BODY, now=SW_TS)


def test_standard_raw_secret_round_trip() -> None:
    content = f"{SW_ID}.{SW_TS}.".encode() + SW_BODY
    digest = hmac.digest(b"plain shared string", content, hashlib.sha256)
    signature = "v1," + base64.b64encode(digest).decode()
    assert sign_standard("plain shared string", SW_ID, SW_TS, SW_BODY) == signature
    assert verify_standard("plain shared string", sw_headers(signature), SW_BODY, now=SW_TS)


def test_standard_bad_whsec_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not valid base64") as exc:
        verify_standard("whsec_not*base64!", sw_headers(), SW_BODY, now=SW_TS)
    assert "not*base64" not in str(exc.value)
    with pytest.raises(ValueError, match="decodes to nothing"):
        verify_standard("whsec_", sw_headers(), SW_BODY, now=SW_TS)


def test_standard_tampered_body_id_or_timestamp() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(SW_SECRET, sw_headers(), SW_BODY + b" ", now=SW_TS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(SW_SECRET, sw_headers(msg_id="msg_other"), SW_BODY, now=SW_TS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(SW_SECRET, sw_headers(ts=SW_TS + 1), SW_BODY, now=SW_TS)


@pytest.mark.parametrize("offset", [-301, 301, -10_000, 10**9])
def test_standard_replay_window_both_sides(offset: int) -> None:
    # The signature is valid for its timestamp; only the clock makes it unacceptable.
    signature = sign_standard(SW_SECRET, SW_ID, SW_TS, SW_BODY)
    with pytest.raises(SignatureError) as exc:
        verify_standard(SW_SECRET, sw_headers(signature), SW_BODY, now=SW_TS + offset)
    assert reason(exc) == "timestamp outside the replay window"


@pytest.mark.parametrize("offset", [-300, 300, -0.5, 0])
def test_standard_inside_replay_window(offset: float) -> None:
    assert verify_standard(SW_SECRET, sw_headers(), SW_BODY, now=SW_TS + offset) == SW_ID


def test_standard_custom_tolerance() -> None:
    assert verify_standard(SW_SECRET, sw_headers(), SW_BODY, now=SW_TS + 900, tolerance=900)
    with pytest.raises(SignatureError, match="replay window"):
        verify_standard(SW_SECRET, sw_headers(), SW_BODY, now=SW_TS + 61, tolerance=60)


def test_standard_missing_headers_are_named() -> None:
    headers = sw_headers()
    del headers["webhook-id"]
    headers["webhook-signature"] = ""
    with pytest.raises(SignatureError) as exc:
        verify_standard(SW_SECRET, headers, SW_BODY, now=SW_TS)
    assert reason(exc) == "missing header(s): webhook-id, webhook-signature"
    with pytest.raises(SignatureError) as exc:
        verify_standard(SW_SECRET, {}, SW_BODY, now=SW_TS)
    assert reason(exc) == "missing header(s): webhook-id, webhook-timestamp, webhook-signature"


@pytest.mark.parametrize("ts", ["1614265330.0", "-1614265330", "abc", "1" * 20, "１２３"])
def test_standard_timestamp_must_be_unix_seconds(ts: str) -> None:
    headers = sw_headers() | {"webhook-timestamp": ts}
    with pytest.raises(SignatureError, match="webhook-timestamp is not unix seconds"):
        verify_standard(SW_SECRET, headers, SW_BODY, now=SW_TS)


def test_standard_overlong_id_refused() -> None:
    with pytest.raises(SignatureError, match="webhook-id is longer"):
        verify_standard(SW_SECRET, sw_headers(msg_id="m" * 257), SW_BODY, now=SW_TS)


def test_standard_any_listed_signature_passes_and_v1a_ignored() -> None:
    other = sign_standard("whsec_" + base64.b64encode(b"k" * 32).decode(), SW_ID, SW_TS, SW_BODY)
    ed25519 = "v1a," + base64.b64encode(b"\x01" * 64).decode()
    listed = f"{ed25519} v1,!!notbase64 v1,{base64.b64encode(b'short').decode()} {other} "
    assert verify_standard(SW_SECRET, sw_headers(listed + SW_SIGNATURE), SW_BODY, now=SW_TS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(SW_SECRET, sw_headers(listed.strip()), SW_BODY, now=SW_TS)


def test_standard_without_v1_entry() -> None:
    ed25519 = "v1a," + base64.b64encode(b"\x01" * 64).decode()
    for header in (ed25519, "v2,abc", SW_SIGNATURE.replace(",", "=")):
        with pytest.raises(SignatureError, match="has no v1 signature"):
            verify_standard(SW_SECRET, sw_headers(header), SW_BODY, now=SW_TS)


def test_standard_rotation() -> None:
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    # Receiver knows old and new: a sender still on the old secret passes.
    assert verify_standard([new, SW_SECRET], sw_headers(), SW_BODY, now=SW_TS) == SW_ID
    # Sender signs with both: a receiver knowing either passes.
    both = sign_standard([SW_SECRET, new], SW_ID, SW_TS, SW_BODY)
    assert both.split(" ")[0] == SW_SIGNATURE and len(both.split(" ")) == 2
    for secret in (SW_SECRET, new):
        assert verify_standard(secret, sw_headers(both), SW_BODY, now=SW_TS) == SW_ID
    with pytest.raises(SignatureError):
        verify_standard(new, sw_headers(), SW_BODY, now=SW_TS)


def test_sign_verify_round_trip() -> None:
    secret = "whsec_" + base64.b64encode(b"secret-key-bytes-12345678").decode()
    body = '{"type":"alert.created","data":{"title":"é"}}'.encode()
    signature = sign_standard(secret, "msg_1", 1700000000, body)
    headers = sw_headers(signature, ts=1700000000, msg_id="msg_1")
    assert verify_standard(secret, headers, body, now=1700000100.5) == "msg_1"


@pytest.mark.parametrize(
    ("msg_id", "ts"), [("", 1), ("msg 1", 1), ("msg_1", -1), ("msg_1", True), ("msg_1", 1.5)]
)
def test_sign_standard_refuses_bad_arguments(msg_id: str, ts: int) -> None:
    with pytest.raises(ValueError):
        sign_standard(SW_SECRET, msg_id, ts, SW_BODY)
