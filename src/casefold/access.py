"""API tokens and roles.

A token is 32 random bytes shown once; only its SHA-256 is stored (the token is high-entropy, so a
slow password hash would buy nothing and cost every request). Roles nest:

    ingest   may post alerts, nothing else
    viewer   reads everything
    analyst  reads, and changes cases
    admin    everything
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from casefold.errors import AuthError, ConflictError, InvalidInputError, NotFoundError
from casefold.store.tables import api_tokens

TOKEN_PREFIX = "cf_"


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"
    INGEST = "ingest"


class Permission(StrEnum):
    INGEST = "ingest"
    READ = "read"
    WRITE_CASES = "write_cases"
    ADMIN = "admin"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INGEST: frozenset({Permission.INGEST}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.ANALYST: frozenset({Permission.READ, Permission.WRITE_CASES}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInputError(
            f"unknown role {value!r}; use one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


def create_token(conn: Connection, name: str, role: Role) -> str:
    """Store a new token for `name`; return the token (the only time it is ever visible)."""
    if not name or len(name) > 200:
        raise InvalidInputError("token name must be 1 to 200 characters", field="name")
    exists = conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first()
    if exists:
        raise ConflictError(f"a token named {name!r} already exists")
    token = new_token()
    conn.execute(
        insert(api_tokens).values(
            name=name, role=role.value, token_hash=hash_token(token), created_at=datetime.now(UTC)
        )
    )
    return token


def list_tokens(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            api_tokens.c.name,
            api_tokens.c.role,
            api_tokens.c.created_at,
            api_tokens.c.last_used_at,
            api_tokens.c.revoked_at,
        ).order_by(api_tokens.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def revoke_token(conn: Connection, name: str) -> None:
    res = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if res.rowcount == 0:
        raise NotFoundError(f"no active token named {name!r}")


def has_any_token(conn: Connection) -> bool:
    return conn.execute(select(api_tokens.c.id).limit(1)).first() is not None


class TokenVerifier:
    """Checks bearer tokens against the store, trusting a verified token for a few seconds.

    The short cache keeps a token lookup off the hot intake path; revocation (by another process,
    the CLI) takes effect within `ttl` seconds.
    """

    def __init__(self, engine: Engine, ttl: float) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str | None) -> Principal | None:
        """The principal for a recently verified token, without touching the store."""
        if not token:
            return None
        with self._lock:
            hit = self._cache.get(hash_token(token))
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        return None

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("missing bearer token")
        hit = self.cached(token)
        if hit is not None:
            return hit
        digest = hash_token(token)
        now = time.monotonic()
        with self._engine.connect() as conn:
            row = conn.execute(
                select(api_tokens.c.name, api_tokens.c.role).where(
                    api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            with self._lock:
                self._cache.pop(digest, None)
            raise AuthError("unknown or revoked token")
        principal = Principal(name=row.name, role=Role(row.role))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal
