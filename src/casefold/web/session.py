"""Server-side web sessions and their CSRF tokens.

The cookie carries 32 random bytes; the store keeps only their SHA-256, with the owner (a user, or
the API token signed in with), a CSRF token and an expiry. Sessions live in the store rather than
in signed cookies so that signing out, disabling a user or revoking a token ends them at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from casefold.access import Principal, Role, hash_token
from casefold.store.tables import api_tokens, users, web_sessions

COOKIE = "casefold_session"
LOGIN_CSRF_COOKIE = "casefold_login_csrf"


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf_token: str
    via_token: bool  # signed in with an API token rather than a password


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def token_owner(conn: Connection, token: str) -> tuple[int, Principal] | None:
    """The id and principal of an active API token, for signing in with it."""
    row = conn.execute(
        select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
            api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return row.id, Principal(name=row.name, role=Role(row.role))


def create_session(
    conn: Connection, *, ttl: timedelta, user_id: int | None = None, token_id: int | None = None
) -> str:
    """Store a new session for a user or a token; return the id for the cookie."""
    if (user_id is None) == (token_id is None):
        raise ValueError("a session belongs to exactly one user or token")
    now = datetime.now(UTC)
    # Sign-ins are rare, so this is a cheap moment to forget sessions nobody ended.
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        insert(web_sessions).values(
            id_hash=_digest(session_id),
            user_id=user_id,
            token_id=token_id,
            csrf_token=new_csrf_token(),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return session_id


def load_session(conn: Connection, session_id: str | None) -> Session | None:
    """The live session for a cookie value: unexpired, its user enabled or its token unrevoked."""
    if not session_id or len(session_id) > 100:
        return None
    row = conn.execute(
        select(
            web_sessions.c.csrf_token,
            web_sessions.c.expires_at,
            web_sessions.c.token_id,
            users.c.name.label("user_name"),
            users.c.role.label("user_role"),
            users.c.disabled,
            api_tokens.c.name.label("token_name"),
            api_tokens.c.role.label("token_role"),
            api_tokens.c.revoked_at,
        )
        .select_from(
            web_sessions.outerjoin(users, users.c.id == web_sessions.c.user_id).outerjoin(
                api_tokens, api_tokens.c.id == web_sessions.c.token_id
            )
        )
        .where(web_sessions.c.id_hash == _digest(session_id))
    ).first()
    if row is None:
        return None
    expires = row.expires_at
    if expires.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        expires = expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        return None
    if row.token_id is not None:
        if row.token_name is None or row.revoked_at is not None:
            return None
        principal = Principal(name=row.token_name, role=Role(row.token_role))
    else:
        if row.user_name is None or row.disabled:
            return None
        principal = Principal(name=row.user_name, role=Role(row.user_role))
    return Session(
        principal=principal, csrf_token=row.csrf_token, via_token=row.token_id is not None
    )


def end_session(conn: Connection, session_id: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _digest(session_id)))
