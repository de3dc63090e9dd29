"""ExtraHop Reveal(x) detection → NormalizedAlert.

Two shapes are accepted (external-apis.md §3.3, §3.6):

* our trigger payload, ``{"event": "DETECTION_CREATE" | "DETECTION_UPDATE", "sent_at": <ms>,
  "detection": {...}}``, pushed by ``extrahop_side/casefold-trigger.js``;
* a bare detection object as ``GET /api/v1/detections/{id}`` and ``POST …/search`` return it.

Detection keys are the REST API's snake_case; the trigger API's camelCase names (``riskScore``,
``startTime``, ``ticketId``…) are read too, so a trigger that forwards ``Detection`` properties
as they are still parses.

Identity. ExtraHop keeps one detection object and updates it in place, so the detection id alone
cannot be the alert id: every update would be dropped as a duplicate of the first alert. The
source id is ``"<detection id>@<version>"`` where the version is the detection's ``update_time``
(else ``end_time``, else ``start_time``), whatever the event:

* new activity moves ``update_time``, so an update with new activity is a new alert;
* a trigger that runs on both DETECTION_CREATE and DETECTION_UPDATE (ExtraHop fires UPDATE on
  creation too), and a later poll of the same unchanged detection, all give one alert;
* changes to the ticket fields alone (status, assignee, ticket id, resolution) leave
  ``update_time`` alone, so they are not new alerts. Most of those are our own PATCH echoing back,
  and a human's status change in ExtraHop is ticket state, not new evidence.

`NormalizedAlert` has no free-form labels, so the detection id is carried by the source id (before
the "@"; read it with `detection_id_of`) and by ``location`` (``"detections/<id>"``, the REST
resource). Folding rules key on the raw payload: ``detection.id`` for the trigger payload, ``id``
for a bare detection. ``rule_id`` is the detection ``type`` (``rare_ssh_port``), the analogue of a
Wazuh rule: what fired, not which occurrence.

Level. Risk scores (0–100) are mapped onto Wazuh's rule-level scale, because folding rules and
playbooks compare levels across sources. The default bands follow ExtraHop's and XSOAR's
low/medium/high/critical split and land in the matching Wazuh severity buckets (low < 7,
medium 7–11, high 12–14, critical ≥ 15): 0–39 → 5, 40–69 → 8, 70–89 → 12, 90–100 → 15. The map
is a parameter (`risk_levels`: lowest risk of each band → level).

Pure: no I/O. The only exception that escapes is `InvalidAlertError`, whose ``field`` names the
offending key (``detection.id``, ``detection.riskScore``…) as it appears in the payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from casefold.errors import InvalidAlertError
from casefold.sources.model import NormalizedAlert
from casefold.sources.observables import ObservableSet, normalize_hostname

SOURCE = "extrahop"
EVENTS = frozenset({"DETECTION_CREATE", "DETECTION_UPDATE"})

# Lowest risk score of each band → Wazuh-scale level (see the module docstring).
DEFAULT_RISK_LEVELS: Mapping[int, int] = MappingProxyType({0: 5, 40: 8, 70: 12, 90: 15})
# Detections without a risk score (performance detections, some user-created ones): medium, so
# they are neither buried under low-level noise nor paged as urgent.
UNSCORED_LEVEL = 8
MAX_RISK = 100
MAX_LEVEL = 16  # Wazuh's ceiling, as in sources.wazuh

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Which time fields say when the detection happened, best first.
_TIME_FIELDS = ("start_time", "create_time", "update_time", "mod_time")
# Which time fields version the detection's activity, best first (see the module docstring).
_VERSION_FIELDS = ("update_time", "end_time", "start_time")
_NON_USERS = frozenset({"", "-", "null", "n/a"})
_MAX_ID_DIGITS = 19  # why: bounds int() on hostile digit strings; ExtraHop ids are 64-bit
_MAX_ID = 2**63 - 1
_MAX_MILLIS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime holds


def parse_extrahop_detection(
    doc: Any,
    *,
    node: str = "extrahop",
    risk_levels: Mapping[int, int] = DEFAULT_RISK_LEVELS,
) -> NormalizedAlert:
    """Normalise a trigger payload or a bare detection. Raises InvalidAlertError (with `field`).

    `node` names the ExtraHop console or Reveal(x) 360 tenant: detection ids are only unique per
    system. `risk_levels` maps the lowest risk score of each band to a level (check it once with
    `check_risk_levels`).
    """
    if not isinstance(doc, dict):
        raise InvalidAlertError("detection must be a JSON object")
    if "detection" in doc:
        detection = doc["detection"]
        if not isinstance(detection, dict):
            raise InvalidAlertError(
                f"detection must be an object, got {_preview(detection)}", field="detection"
            )
        _check_event(doc)
        sent_at = _millis(doc, "sent_at", "")
        prefix = "detection."
    else:
        detection, sent_at, prefix = doc, None, ""
    fields = _Fields(detection, prefix)

    detection_id = fields.detection_id()
    title = fields.required_text("title")
    time_ms = fields.first_time(_TIME_FIELDS)
    if time_ms is None:
        if sent_at is None:
            raise InvalidAlertError(f"{prefix}start_time is required", field=f"{prefix}start_time")
        time_ms = sent_at  # why: a partial payload still has its send time
    version = fields.first_time(_VERSION_FIELDS)

    tactics, techniques, mitre_ids = fields.mitre()
    risk = fields.risk_score()
    return NormalizedAlert(
        source=SOURCE,
        source_id=detection_source_id(detection_id, version),
        node=node,
        time_original=str(time_ms),
        time_utc=_utc(time_ms),
        title=title,
        level=UNSCORED_LEVEL if risk is None else level_for_risk(risk, risk_levels),
        rule_id=fields.text("type"),
        groups=_unique([SOURCE, *fields.str_list("categories")]),
        mitre_ids=mitre_ids,
        tactics=tactics,
        techniques=techniques,
        location=f"detections/{detection_id}",
        observables=fields.observables().to_list(),
    )


def level_for_risk(risk: int, risk_levels: Mapping[int, int] = DEFAULT_RISK_LEVELS) -> int:
    """The level of the band `risk` falls in (the band with the highest lower bound ≤ risk).

    A risk below every band gets the lowest band's level; an empty map means the defaults.
    """
    bands = sorted((risk_levels or DEFAULT_RISK_LEVELS).items())
    level = bands[0][1]
    for lowest, band_level in bands:
        if risk >= lowest:
            level = band_level
    return level


def check_risk_levels(risk_levels: Mapping[Any, Any]) -> dict[int, int]:
    """Validate a risk → level map from settings; ValueError naming the problem.

    Keys are the lowest risk score of each band (0 must be one of them), values Wazuh levels.
    """
    if not risk_levels:
        raise ValueError("the risk → level map is empty")
    checked: dict[int, int] = {}
    for lowest, level in risk_levels.items():
        if not _is_int(lowest) or not 0 <= lowest <= MAX_RISK:
            raise ValueError(f"risk band start {lowest!r} is not an integer from 0 to {MAX_RISK}")
        if not _is_int(level) or not 0 <= level <= MAX_LEVEL:
            raise ValueError(f"level {level!r} is not an integer from 0 to {MAX_LEVEL}")
        checked[lowest] = level
    if 0 not in checked:
        raise ValueError("the risk → level map must have a band starting at 0")
    return dict(sorted(checked.items()))


def detection_source_id(detection_id: int, version: int | None) -> str:
    """Alert source id for one version of a detection: "<id>@<version ms>" (or "<id>")."""
    return str(detection_id) if version is None else f"{detection_id}@{version}"


def detection_id_of(alert: NormalizedAlert | str) -> int | None:
    """The ExtraHop detection id behind an alert (or its source id); None for other sources."""
    if isinstance(alert, NormalizedAlert):
        if alert.source != SOURCE:
            return None
        alert = alert.source_id
    head = alert.partition("@")[0]
    if head.isascii() and head.isdigit() and len(head) <= _MAX_ID_DIGITS:
        return int(head)
    return None


# --- helpers ---------------------------------------------------------------------------------


class _Fields:
    """Typed reads from one detection object, by snake_case name, camelCase tolerated."""

    __slots__ = ("data", "prefix")

    def __init__(self, data: dict[str, Any], prefix: str) -> None:
        self.data = data
        self.prefix = prefix

    def get(self, name: str) -> tuple[str, Any]:
        """(key actually present, value); the snake_case key wins when both are there."""
        return _lookup(self.data, name, self.prefix)

    def detection_id(self) -> int:
        key, value = self.get("id")
        if value is None:
            raise InvalidAlertError(f"{key} is required", field=key)
        if _is_int(value) and 0 <= value <= _MAX_ID:
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS:
                return int(text)  # why: ExtraHop's own scripts pass ids around as strings
        raise InvalidAlertError(
            f"{key} must be a non-negative integer, got {_preview(value)}", field=key
        )

    def text(self, name: str) -> str | None:
        key, value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidAlertError(f"{key} must be a string, got {_preview(value)}", field=key)
        return value.strip() or None

    def required_text(self, name: str) -> str:
        key, value = self.get(name)
        if value is None:
            raise InvalidAlertError(f"{key} is required", field=key)
        text = self.text(name)
        if text is None:
            raise InvalidAlertError(f"{key} must not be empty", field=key)
        return text

    def first_time(self, names: tuple[str, ...]) -> int | None:
        """Epoch ms from the first of `names` that holds a time; wrong types raise."""
        for name in names:
            value = _millis(self.data, name, self.prefix)
            if value is not None:
                return value
        return None

    def risk_score(self) -> int | None:
        key, value = self.get("risk_score")
        if value is None:
            return None
        risk: int | None = None
        if _is_int(value):
            risk = value
        elif isinstance(value, float) and value.is_integer():
            risk = int(value)
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            text = value.strip()
            risk = int(text) if len(text) <= 6 else MAX_RISK + 1  # why: bounds int()
        if risk is None:
            raise InvalidAlertError(f"{key} must be an integer, got {_preview(value)}", field=key)
        if not 0 <= risk <= MAX_RISK:
            raise InvalidAlertError(
                f"{key} must be between 0 and {MAX_RISK}, got {_preview(value)}", field=key
            )
        return risk

    def str_list(self, name: str) -> list[str]:
        """A list of strings; a lone string is a list of one; non-string items are skipped."""
        key, value = self.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise InvalidAlertError(f"{key} must be a list, got {_preview(value)}", field=key)
        return _unique(item.strip() for item in value if isinstance(item, str) and item.strip())

    def objects(self, name: str) -> tuple[str, list[Any]]:
        key, value = self.get(name)
        if value is None:
            return key, []
        if not isinstance(value, list):
            raise InvalidAlertError(f"{key} must be a list, got {_preview(value)}", field=key)
        return key, value

    def mitre(self) -> tuple[list[str], list[str], list[str]]:
        """(tactic names, technique names, technique ids), the way Wazuh's rule.mitre has them.

        The REST API splits tactics and techniques; the trigger API's ``mitreCategories`` mixes
        them, so those entries are sorted by id (TA… is a tactic, T… a technique).
        """
        tactics: list[str] = []
        techniques: list[tuple[str, str]] = []
        sources = (("mitre_tactics", "tactic"), ("mitre_techniques", "technique"))
        for name, kind in (*sources, ("mitre_categories", None)):
            for item in self.objects(name)[1]:
                ident, label = _mitre_entry(item)
                if ident is None and label is None:
                    continue
                is_tactic = (
                    kind == "tactic" if kind else bool(ident and ident.upper().startswith("TA"))
                )
                if is_tactic:
                    tactics.append(label or ident or "")
                else:
                    techniques.append((ident or "", label or ident or ""))
        named = [(ident, label) for ident, label in _unique(techniques) if ident]
        return (
            _unique(tactics),
            [label for _, label in named],
            [ident for ident, _ in named],
        )

    def observables(self) -> ObservableSet:
        """IPs, host names and user names of the participants, offenders first.

        `Observable` has no role field, so the role is appended to `field`:
        ``detection.participants.1.object_value (offender)``.
        """
        found = ObservableSet()
        key, participants = self.objects("participants")
        indexed = [(i, p) for i, p in enumerate(participants) if isinstance(p, dict)]
        # why: the set keeps the first field that reported a value, and the offender is the
        # participant an analyst pivots on
        indexed.sort(key=lambda item: _role(item[1]) != "offender")
        for index, participant in indexed:
            _add_participant(found, participant, f"{key}.{index}", _role(participant))
        return found


def _add_participant(
    found: ObservableSet, participant: dict[str, Any], path: str, role: str
) -> None:
    def where(name: str) -> str:
        return f"{path}.{name} ({role})" if role else f"{path}.{name}"

    object_type = _lookup(participant, "object_type", "")[1]
    if object_type == "ipaddr":
        key, value = _lookup(participant, "object_value", "")
        found.add_ip(value, where(key))
    for name in ("ipaddr", "ipaddrs"):
        key, value = _lookup(participant, name, "")
        for item in value if isinstance(value, list) else [value]:
            found.add_ip(item, where(key))
    key, value = _lookup(participant, "hostname", "")
    host = normalize_hostname(value)
    if host is not None:
        found.add("hostname", host, where(key))
    key, value = _lookup(participant, "username", "")
    if isinstance(value, str) and value.strip().lower() not in _NON_USERS:
        found.add("user", value.strip(), where(key))


def _role(participant: dict[str, Any]) -> str:
    role = participant.get("role")
    return role.strip().lower() if isinstance(role, str) else ""


def _mitre_entry(item: Any) -> tuple[str | None, str | None]:
    """(id, name) of a MITRE entry: an object {id, name, …} or a bare id string."""
    if isinstance(item, str):
        text = item.strip()
        return (text or None), None
    if not isinstance(item, dict):
        return None, None
    ident, name = item.get("id"), item.get("name")
    ident = ident.strip() if isinstance(ident, str) and ident.strip() else None
    name = name.strip() if isinstance(name, str) and name.strip() else None
    return ident, name


def _check_event(doc: dict[str, Any]) -> None:
    event = doc.get("event")
    if event is None:
        return  # why: the payload contract makes it optional; the detection says enough
    if not isinstance(event, str) or event not in EVENTS:
        raise InvalidAlertError(
            f"event must be one of {', '.join(sorted(EVENTS))}, got {_preview(event)}",
            field="event",
        )


def _lookup(data: dict[str, Any], name: str, prefix: str) -> tuple[str, Any]:
    if data.get(name) is not None:
        return prefix + name, data[name]
    camel = _camel(name)
    if camel != name and data.get(camel) is not None:
        return prefix + camel, data[camel]
    return prefix + name, None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _millis(data: dict[str, Any], name: str, prefix: str) -> int | None:
    """Epoch milliseconds at `name` (None when absent); wrong types raise InvalidAlertError."""
    key, value = _lookup(data, name, prefix)
    if value is None:
        return None
    millis: int | None = None
    if _is_int(value):
        millis = value
    elif isinstance(value, float) and value.is_integer():
        millis = int(value)  # why: JavaScript numbers can arrive as 1.6735e12
    if millis is None:
        raise InvalidAlertError(
            f"{key} must be epoch milliseconds (an integer), got {_preview(value)}", field=key
        )
    if not 0 <= millis <= _MAX_MILLIS:
        raise InvalidAlertError(f"{key} is out of range: {_preview(value)}", field=key)
    return millis


def _utc(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # why: True is an int


def _unique(items: Any) -> list[Any]:
    return list(dict.fromkeys(items))


def _preview(value: Any) -> str:
    """Short repr for error messages: never echo a whole (possibly huge) payload back."""
    if not isinstance(value, str | int | float | bool | type(None)):
        return type(value).__name__
    try:
        text = repr(value)
    except ValueError:  # an int over 3.11's 4300-digit str() limit
        return "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."
