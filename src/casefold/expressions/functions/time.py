"""FN catalogue, part 3: dates, times and durations.

Conventions: durations are ``datetime.timedelta`` (so ``FN.now() - FN.minutes(5)``
works with plain ``-``); ``*_between`` return floats; epoch inputs are seconds
unless ``unit='ms'``. ``now``/``utcnow``/``today`` are the only
non-deterministic functions here (flagged in the registry so a validator or a
replaying engine can tell).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from ..errors import EvaluationError
from ._util import type_name
from .registry import register

Num = int | float
_MAX_FORMAT = 200


def _tz(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return None
    if name.upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise EvaluationError(f"unknown time zone {name!r}") from None


def _from_epoch(x: Num, unit: str = "s") -> dt.datetime:
    if unit not in ("s", "ms"):
        raise EvaluationError("unit must be 's' or 'ms'")
    try:
        return dt.datetime.fromtimestamp(x / 1000 if unit == "ms" else x, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise EvaluationError(f"timestamp {x!r} out of range: {e}") from None


def _as_datetime(x: Any) -> dt.datetime:
    if isinstance(x, dt.datetime):
        return x
    if isinstance(x, dt.date):
        return dt.datetime(x.year, x.month, x.day)
    if isinstance(x, int | float) and not isinstance(x, bool):
        return _from_epoch(x)
    if isinstance(x, str):
        text = x.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        # Wazuh writes "2025-05-12T10:00:00.123+0000": add the offset colon.
        if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
            try:
                return dt.datetime.fromisoformat(text[:-2] + ":" + text[-2:])
            except ValueError:
                pass
        raise EvaluationError(f"cannot parse {x!r:.60} as a datetime")
    raise EvaluationError(f"expected a datetime, ISO string or epoch number, got {type_name(x)}")


@register(category="time", deterministic=False)
def now(as_isoformat: bool = False) -> Any:
    """Current local time (naive), or its ISO text."""
    value = dt.datetime.now()
    return value.isoformat() if as_isoformat else value


@register(category="time", deterministic=False)
def utcnow(as_isoformat: bool = False) -> Any:
    """Current UTC time (aware)."""
    value = dt.datetime.now(dt.UTC)
    return value.isoformat() if as_isoformat else value


@register(category="time", deterministic=False)
def today() -> dt.date:
    """Today's local date."""
    return dt.date.today()


@register(category="time")
def to_datetime(x: Any, timezone: str | None = None) -> dt.datetime:
    """Datetime from a datetime, ISO string or epoch seconds (optionally converted to a zone)."""
    value = _as_datetime(x)
    tz = _tz(timezone)
    if tz is not None:
        value = value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)
    return value


@register(category="time")
def parse_datetime(x: str, format: str) -> dt.datetime:
    """``datetime.strptime(x, format)``."""
    try:
        return dt.datetime.strptime(x, format)
    except ValueError as e:
        raise EvaluationError(str(e)) from None


@register(category="time")
def parse_time(x: str) -> dt.time:
    """``'HH:MM'`` or ``'HH:MM:SS'`` → time."""
    try:
        return dt.time.fromisoformat(x)
    except ValueError as e:
        raise EvaluationError(str(e)) from None


@register(category="time")
def format_datetime(x: Any, format: str) -> str:
    """``strftime`` with a bounded format."""
    if len(format) > _MAX_FORMAT:
        raise EvaluationError("datetime format too long")
    return _as_datetime(x).strftime(format)


@register(category="time")
def to_isoformat(x: Any) -> str:
    """ISO 8601 text."""
    if isinstance(x, dt.time | dt.date) and not isinstance(x, dt.datetime):
        return x.isoformat()
    return _as_datetime(x).isoformat()


@register(category="time")
def to_timestamp(x: Any, unit: str = "s") -> Num:
    """Epoch seconds (float) or milliseconds (int)."""
    value = _as_datetime(x)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds = value.timestamp()
    if unit == "ms":
        return int(seconds * 1000)
    if unit != "s":
        raise EvaluationError("unit must be 's' or 'ms'")
    return seconds


@register(category="time")
def from_timestamp(x: Num, unit: str = "s") -> dt.datetime:
    """UTC datetime from epoch seconds/milliseconds."""
    return _from_epoch(x, unit)


@register(category="time")
def set_timezone(x: Any, timezone: str) -> dt.datetime:
    """Convert to ``timezone`` (naive values are taken as already in it)."""
    return to_datetime(x, timezone)


@register(category="time")
def unset_timezone(x: Any) -> dt.datetime:
    """Drop the time zone, keeping wall-clock time."""
    return _as_datetime(x).replace(tzinfo=None)


@register("datetime", category="time")
def datetime_(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    """Build a (naive) datetime."""
    try:
        return dt.datetime(year, month, day, hour, minute, second)
    except (ValueError, OverflowError) as e:
        raise EvaluationError(str(e)) from None


def _delta(**kw: Num) -> dt.timedelta:
    try:
        return dt.timedelta(**kw)
    except OverflowError as e:
        raise EvaluationError(f"duration out of range: {e}") from None


@register(category="time")
def seconds(x: Num) -> dt.timedelta:
    """A duration of ``x`` seconds."""
    return _delta(seconds=x)


@register(category="time")
def minutes(x: Num) -> dt.timedelta:
    """A duration of ``x`` minutes."""
    return _delta(minutes=x)


@register(category="time")
def hours(x: Num) -> dt.timedelta:
    """A duration of ``x`` hours."""
    return _delta(hours=x)


@register(category="time")
def days(x: Num) -> dt.timedelta:
    """A duration of ``x`` days."""
    return _delta(days=x)


@register(category="time")
def weeks(x: Num) -> dt.timedelta:
    """A duration of ``x`` weeks."""
    return _delta(weeks=x)


def _between(start: Any, end: Any) -> float:
    a, b = _as_datetime(start), _as_datetime(end)
    try:
        return (b - a).total_seconds()
    except TypeError:
        raise EvaluationError("cannot mix naive and time-zone-aware datetimes") from None


@register(category="time")
def seconds_between(start: Any, end: Any) -> float:
    """Seconds from ``start`` to ``end``."""
    return _between(start, end)


@register(category="time")
def minutes_between(start: Any, end: Any) -> float:
    """Minutes from ``start`` to ``end``."""
    return _between(start, end) / 60


@register(category="time")
def hours_between(start: Any, end: Any) -> float:
    """Hours from ``start`` to ``end``."""
    return _between(start, end) / 3600


@register(category="time")
def days_between(start: Any, end: Any) -> float:
    """Days from ``start`` to ``end``."""
    return _between(start, end) / 86400


@register(category="time")
def weeks_between(start: Any, end: Any) -> float:
    """Weeks from ``start`` to ``end``."""
    return _between(start, end) / 604800


@register(category="time")
def get_second(x: Any) -> int:
    """Second of the minute."""
    return _as_datetime(x).second


@register(category="time")
def get_minute(x: Any) -> int:
    """Minute of the hour."""
    return _as_datetime(x).minute


@register(category="time")
def get_hour(x: Any) -> int:
    """Hour of the day."""
    return _as_datetime(x).hour


@register(category="time")
def get_day(x: Any) -> int:
    """Day of the month."""
    return _as_datetime(x).day


@register(category="time")
def get_year(x: Any) -> int:
    """Year."""
    return _as_datetime(x).year


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _named(index: int, names: tuple[str, ...], format: str, number: int) -> Any:
    if format == "number":
        return number
    if format == "full":
        return names[index]
    if format == "short":
        return names[index][:3]
    raise EvaluationError("format must be 'number', 'full' or 'short'")


@register(category="time")
def get_day_of_week(x: Any, format: str = "number") -> Any:
    """0 (Monday) … 6 (Sunday), or the day's name (``'full'``/``'short'``)."""
    wd = _as_datetime(x).weekday()
    return _named(wd, _DAYS, format, wd)


@register(category="time")
def get_month(x: Any, format: str = "number") -> Any:
    """1 … 12, or the month's name (``'full'``/``'short'``)."""
    m = _as_datetime(x).month
    return _named(m - 1, _MONTHS, format, m)


def _clock(x: Any) -> dt.time:
    if isinstance(x, dt.time):
        return x
    if isinstance(x, str):
        return parse_time(x)
    raise EvaluationError(f"expected 'HH:MM' text, got {type_name(x)}")


@register(category="time")
def is_working_hours(
    x: Any,
    start: str,
    end: str,
    include_weekends: bool = False,
    timezone: str | None = None,
) -> bool:
    """True if ``x`` falls between ``start`` and ``end`` (overnight windows work)."""
    value = to_datetime(x, timezone) if timezone else _as_datetime(x)
    if not include_weekends and value.weekday() >= 5:
        return False
    t = value.time().replace(tzinfo=None)
    a, b = _clock(start), _clock(end)
    if a <= b:
        return a <= t <= b
    return t >= a or t <= b
