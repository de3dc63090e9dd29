"""The normalised view of a stored alert: its JSON, and completing alerts stored without one.

File intake stores an alert with its header only (`wazuh_header`: what the store indexes); the
rest is normalised when it is folded, or when someone reads it first. Pure, like every source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from casefold.errors import InvalidAlertError
from casefold.sources.model import NormalizedAlert, Observable
from casefold.sources.wazuh import parse_wazuh_alert


def encode_normalized(alert: NormalizedAlert) -> tuple[NormalizedAlert, bytes]:
    """The normalised view's JSON, and the alert it was written from."""
    normalized = orjson.dumps(alert, option=orjson.OPT_UTC_Z)
    if b"\\u0000" in normalized:
        # PostgreSQL's text columns refuse NUL; the raw JSON keeps it (escaped), the columns and
        # the normalised view show U+FFFD instead.
        alert = without_nul(alert)
        normalized = orjson.dumps(alert, option=orjson.OPT_UTC_Z)
    return alert, normalized


# The parsers that complete the normalised view of alerts stored with a header only (file
# intake of Wazuh's alerts.json), by source.
COMPLETE: dict[str, Callable[[Any], NormalizedAlert]] = {"wazuh": parse_wazuh_alert}


def complete_alert(source: str, raw: Any) -> tuple[NormalizedAlert, bytes]:
    """Normalise an alert stored with its header only; raises InvalidAlertError if it cannot."""
    parse = COMPLETE.get(source)
    if parse is None:
        raise InvalidAlertError(f"no parser normalises alerts of source {source!r}")
    return encode_normalized(parse(raw))


def complete_view(source: str, normalized: Any, raw: Any) -> Any:
    """An alert's normalised view as stored, or computed from its raw JSON if not yet folded."""
    if normalized is not None:
        return normalized
    try:
        return orjson.loads(complete_alert(source, raw)[1])
    except InvalidAlertError:
        return None


def _clean(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def without_nul(alert: NormalizedAlert) -> NormalizedAlert:
    changes: dict[str, Any] = {}
    for name in NormalizedAlert.__dataclass_fields__:
        value = getattr(alert, name)
        if name == "observables":
            changes[name] = [
                Observable(_clean(o.type), _clean(o.value), _clean(o.field), o.kind, o.public)
                for o in value
            ]
        elif isinstance(value, list):
            changes[name] = [_clean(v) for v in value]
        else:
            changes[name] = _clean(value)
    return replace(alert, **changes)
