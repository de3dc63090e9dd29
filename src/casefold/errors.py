"""Casefold's exceptions, one tree so callers catch at the level they need.

    CasefoldError
    ├── ConfigError            a setting is wrong; start-up stops with one line naming it
    ├── InvalidInputError      a client sent something we cannot accept (HTTP 4xx)
    │   ├── InvalidAlertError  an alert lacks a required field or has a wrong type
    │   └── PayloadTooLargeError
    ├── NotFoundError          the thing asked for does not exist (HTTP 404)
    ├── ConflictError          the change collides with the current state (HTTP 409)
    ├── UpstreamError          another system (a threat-intel provider) failed to answer (502)
    └── AuthError              missing/unknown token (401) or role too weak (403, `forbidden=True`)

The HTTP mapping lives in one place, `casefold.api.errors`.
"""

from __future__ import annotations


class CasefoldError(Exception):
    """Root of every error Casefold raises on purpose."""


class ConfigError(CasefoldError):
    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"invalid setting {setting}: {reason}")
        self.setting = setting
        self.reason = reason


class InvalidInputError(CasefoldError):
    """Bad client input. `field` names the offending field (dotted path), when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"message": self.message}
        if self.field is not None:
            d["field"] = self.field
        return d


class InvalidAlertError(InvalidInputError):
    pass


class PayloadTooLargeError(InvalidInputError):
    pass


class NotFoundError(CasefoldError):
    pass


class ConflictError(CasefoldError):
    pass


class UpstreamError(CasefoldError):
    pass


class AuthError(CasefoldError):
    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.forbidden = forbidden
