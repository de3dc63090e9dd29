"""Web UI users: argon2id password hashes, sign-in checks, disabling.

Hashing is slow on purpose, so callers hash (`hash_password`) and verify (`verify_password`)
outside the store's single writer thread, and hand the writer only quick statements.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from casefold.access import Principal, Role
from casefold.errors import ConflictError, InvalidInputError, NotFoundError
from casefold.store.tables import users, web_sessions

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a huge form field from costing much

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that answer takes as long as a wrong
    password. Made when first needed rather than at import: one hash holds 64 MiB for a moment,
    which every `casefold` command paid at start."""
    return _hasher.hash("casefold-no-such-user")


def prepare_sign_in() -> None:
    """Make the dummy hash before the first sign-in, so that the first unknown name does not
    take longer than a wrong password (the login form calls this; it is slow once)."""
    _dummy_hash()


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    disabled: bool

    @property
    def principal(self) -> Principal:
        return Principal(name=self.name, role=self.role)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(
            f"password must be at least {MIN_PASSWORD} characters", field="password"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInputError(
            f"password must be at most {MAX_PASSWORD} characters", field="password"
        )
    return _hasher.hash(password)


def create_user(conn: Connection, name: str, role: Role, password_hash: str) -> User:
    if not name or len(name) > 200 or name != name.strip():
        raise InvalidInputError(
            "user name must be 1 to 200 characters, without surrounding spaces", field="name"
        )
    exists = conn.execute(select(users.c.id).where(users.c.name == name)).first()
    if exists:
        raise ConflictError(f"a user named {name!r} already exists")
    res = conn.execute(
        insert(users).values(
            name=name,
            role=role.value,
            password_hash=password_hash,
            disabled=False,
            created_at=datetime.now(UTC),
        )
    )
    return User(id=int(res.inserted_primary_key[0]), name=name, role=role, disabled=False)


def verify_password(conn: Connection, name: str, password: str) -> User | None:
    """The enabled user `name` if `password` is theirs, else None.

    Unknown names, disabled users and wrong passwords all cost one argon2 verification, so the
    time taken does not tell which names exist.
    """
    row = conn.execute(
        select(users.c.id, users.c.role, users.c.password_hash, users.c.disabled).where(
            users.c.name == name
        )
    ).first()
    stored = row.password_hash if row is not None else _dummy_hash()
    try:
        ok = _hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or row.disabled:
        return None
    return User(id=row.id, name=name, role=Role(row.role), disabled=False)


def record_login(conn: Connection, user_id: int) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=datetime.now(UTC)))


def disable_user(conn: Connection, name: str) -> None:
    """Disable `name` and end their sessions at once (not at the sessions' expiry)."""
    user_id = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
    if user_id is None:
        raise NotFoundError(f"no user named {name!r}")
    conn.execute(update(users).where(users.c.id == user_id).values(disabled=True))
    conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))


def list_users(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            users.c.name, users.c.role, users.c.disabled, users.c.created_at, users.c.last_login_at
        ).order_by(users.c.id)
    ).mappings()
    return [dict(r) for r in rows]
