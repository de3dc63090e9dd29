"""GitHub security webhooks and generic Standard Webhooks events → NormalizedAlert.

Pure: no I/O. The only exception that escapes is `InvalidAlertError`, naming the field.

GitHub events handled (the `X-GitHub-Event` header): `code_scanning_alert`,
`secret_scanning_alert`, `dependabot_alert`, its legacy predecessor
`repository_vulnerability_alert`, and `security_advisory`. `ping` and every other event return
None: accepted and ignored, so GitHub's delivery log stays green for a hook subscribed to more
than we read.

Levels (Wazuh's 0–16 scale) from the severity word:
critical 15, high 12, medium/moderate 8, low 5, anything else or none 3.
- code scanning: `rule.security_severity_level` (security queries); otherwise the SARIF
  `rule.severity`, read as error → medium, warning → low, note/none → 3.
- secret scanning: always 12 (the severity is "a credential is exposed"); `publicly_leaked` 15;
  tagged MITRE T1552 (Unsecured Credentials).
- Actions that close or merely reassign an alert (fixed, dismissed, resolved, withdrawn, …) are 3
  whatever the severity: they record a change, they do not expose anything new.

The secret of a secret-scanning alert is never read, whatever the payload carries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from casefold.errors import InvalidAlertError
from casefold.sources.model import OBSERVABLE_TYPES, NormalizedAlert
from casefold.sources.observables import (
    ObservableSet,
    classify_ip,
    hash_kind,
    normalize_domain,
    normalize_hash,
    normalize_hostname,
    normalize_url,
)
from casefold.sources.wazuh import MAX_LEVEL, wazuh_timestamp

SOURCE = "github"

CODE_SCANNING = "code_scanning_alert"
SECRET_SCANNING = "secret_scanning_alert"
DEPENDABOT = "dependabot_alert"
VULNERABILITY = "repository_vulnerability_alert"  # deprecated by GitHub for dependabot_alert
ADVISORY = "security_advisory"
HANDLED_EVENTS = frozenset({CODE_SCANNING, SECRET_SCANNING, DEPENDABOT, VULNERABILITY, ADVISORY})

SEVERITY_LEVELS: dict[str, int] = {"critical": 15, "high": 12, "medium": 8, "low": 5}
DEFAULT_LEVEL = 3
SECRET_SCANNING_LEVEL = 12
PUBLICLY_LEAKED_LEVEL = 15
# An exposed credential is ATT&CK "Unsecured Credentials"; the Wazuh rules tag it the same way.
_SECRET_MITRE = (["T1552"], ["Credential Access"], ["Unsecured Credentials"])

# Lifecycle actions that close, reopen nothing, or only change who looks at an alert. Legacy
# repository_vulnerability_alert uses the bare verbs ("dismiss", "resolve").
QUIET_ACTIONS = frozenset(
    {
        "fixed",
        "closed_by_user",
        "dismissed",
        "dismiss",
        "auto_dismissed",
        "resolved",
        "resolve",
        "revoked",
        "withdrawn",
        "assigned",
        "unassigned",
        "updated_assignment",
    }
)
# Actions that are the normal way an alert begins: not worth repeating in the title.
_OPENING_ACTIONS = frozenset({"created", "create", "published"})

# SARIF severities of non-security code scanning rules, as severity words.
_SARIF_SEVERITIES = {"error": "medium", "warning": "low"}

_SEVERITY_WORDS = {"moderate": "medium"}  # GitHub advisories say moderate, code scanning medium
_MAX_TITLE = 300
_MAX_REFERENCES = 10
_MAX_ID = 128

# Standard Webhooks events: severity words accepted in data.severity / data.level.
STANDARD_SEVERITY_WORDS: dict[str, int] = {
    "critical": 15,
    "high": 12,
    "medium": 8,
    "moderate": 8,
    "low": 5,
    "info": 3,
    "informational": 3,
}
MAX_STANDARD_OBSERVABLES = 100


# --- GitHub ----------------------------------------------------------------------------------


def parse_github_event(event: str, delivery: str, doc: dict[str, Any]) -> NormalizedAlert | None:
    """Normalise one GitHub webhook delivery, or None for events we do not turn into alerts.

    `event` is the `X-GitHub-Event` header, `delivery` the `X-GitHub-Delivery` GUID (the same on
    a manual redelivery, hence the alert's source_id and idempotency key).
    """
    if event not in HANDLED_EVENTS:
        return None  # ping and the rest: accepted, nothing stored
    if not isinstance(doc, dict):
        raise InvalidAlertError("payload must be a JSON object")
    delivery_id = _delivery(delivery)
    action = _str(doc, "action")
    repository = _obj(doc, "repository")
    organization = _obj(doc, "organization")
    node = (
        _str(repository, "full_name", "repository.full_name")
        or _str(organization, "login", "organization.login")
        or SOURCE
    )

    found = ObservableSet()
    if event == ADVISORY:
        advisory = _obj(doc, "security_advisory", required=True)
        parts = _advisory(advisory, "security_advisory", found)
        time_obj, time_path = advisory, "security_advisory"
        time_keys: tuple[str, ...] = ("updated_at", "published_at")
    else:
        alert = _obj(doc, "alert", required=True)
        handler = {
            CODE_SCANNING: _code_scanning,
            SECRET_SCANNING: _secret_scanning,
            DEPENDABOT: _dependabot,
            VULNERABILITY: _vulnerability,
        }[event]
        parts = handler(alert, found)
        time_obj, time_path = alert, "alert"
        time_keys = ("updated_at", "created_at")
    _add_user(found, doc.get("sender"), "sender")

    severity = parts.severity
    if event == SECRET_SCANNING:
        level = PUBLICLY_LEAKED_LEVEL if action == "publicly_leaked" else SECRET_SCANNING_LEVEL
    else:
        level = SEVERITY_LEVELS.get(severity or "", DEFAULT_LEVEL)
    if action in QUIET_ACTIONS:
        level = DEFAULT_LEVEL
    title = parts.title
    if action and action not in _OPENING_ACTIONS:
        title = f"{title} [{action}]"
    time_original, time_utc = _event_time(time_obj, time_path, time_keys)
    mitre: tuple[list[str], ...] = _SECRET_MITRE if event == SECRET_SCANNING else ([], [], [])

    return NormalizedAlert(
        source=SOURCE,
        source_id=delivery_id,
        node=node,
        time_original=time_original,
        time_utc=time_utc,
        title=_clip(title, _MAX_TITLE),
        level=level,
        rule_id=parts.rule_id,
        groups=[g for g in (SOURCE, event, action) if g],
        mitre_ids=list(mitre[0]),
        tactics=list(mitre[1]),
        techniques=list(mitre[2]),
        location=parts.location,
        observables=found.to_list(),
    )


def github_severity(event: str, doc: Any) -> str | None:
    """The normalised severity word ("critical", "high", "medium", "low") of a handled event.

    None when the event has none we understand. Lenient: never raises (used to label lines
    written for Wazuh, after `parse_github_event` has already accepted the payload).
    """
    try:
        if event not in HANDLED_EVENTS or event == SECRET_SCANNING or not isinstance(doc, dict):
            return None
        if event == ADVISORY:
            return _severity(_str(_obj(doc, "security_advisory"), "severity"))
        alert = _obj(doc, "alert")
        if event == CODE_SCANNING:
            return _code_scanning_severity(_obj(alert, "rule", "alert.rule"))
        if event == DEPENDABOT:
            return _dependabot_severity(alert)
        return _severity(_str(alert, "severity", "alert.severity"))
    except InvalidAlertError:
        return None


class _Parts:
    """What an event handler found, beyond the observables it added."""

    __slots__ = ("title", "rule_id", "severity", "location")

    def __init__(
        self, title: str, rule_id: str | None, severity: str | None, location: str | None = None
    ) -> None:
        self.title = title
        self.rule_id = rule_id
        self.severity = severity
        self.location = location


def _code_scanning(alert: dict[str, Any], found: ObservableSet) -> _Parts:
    rule = _obj(alert, "rule", "alert.rule")
    tool = _obj(alert, "tool", "alert.tool")
    instance = _obj(alert, "most_recent_instance", "alert.most_recent_instance")
    where = _obj(instance, "location", "alert.most_recent_instance.location")
    rule_id = _str(rule, "id", "alert.rule.id")
    what = (
        _str(rule, "description", "alert.rule.description")
        or _str(rule, "name", "alert.rule.name")
        or rule_id
        or "alert"
    )
    path = _str(where, "path", "alert.most_recent_instance.location.path")
    line = _int(where, "start_line", "alert.most_recent_instance.location.start_line")
    location = f"{path}:{line}" if path and line is not None else path
    tool_name = _str(tool, "name", "alert.tool.name")
    title = f"GitHub code scanning: {what}"
    if tool_name:
        title = f"GitHub code scanning ({tool_name}): {what}"
    if location:
        title += f" in {location}"
    _add_url(found, alert, "html_url", "alert.html_url")
    _add_user(found, alert.get("dismissed_by"), "alert.dismissed_by")
    return _Parts(title, rule_id, _code_scanning_severity(rule), location)


def _code_scanning_severity(rule: dict[str, Any]) -> str | None:
    path = "alert.rule.security_severity_level"
    security = _severity(_str(rule, "security_severity_level", path))
    if security is not None:
        return security
    sarif = _str(rule, "severity", "alert.rule.severity")
    return _SARIF_SEVERITIES.get(sarif.lower()) if sarif else None


def _secret_scanning(alert: dict[str, Any], found: ObservableSet) -> _Parts:
    # why: only the type fields are read; alert.secret (the credential itself) never is
    secret_type = _str(alert, "secret_type", "alert.secret_type")
    display = _str(alert, "secret_type_display_name", "alert.secret_type_display_name")
    title = f"GitHub secret scanning: {display or secret_type or 'secret'} exposed"
    _add_url(found, alert, "html_url", "alert.html_url")
    _add_user(found, alert.get("resolved_by"), "alert.resolved_by")
    _add_user(found, alert.get("push_protection_bypassed_by"), "alert.push_protection_bypassed_by")
    return _Parts(title, secret_type, None)


def _dependabot(alert: dict[str, Any], found: ObservableSet) -> _Parts:
    advisory = _obj(alert, "security_advisory", "alert.security_advisory")
    vulnerability = _obj(alert, "security_vulnerability", "alert.security_vulnerability")
    dependency = _obj(alert, "dependency", "alert.dependency")
    package = _package_name(dependency, "alert.dependency") or _package_name(
        vulnerability, "alert.security_vulnerability"
    )
    versions = _str(
        vulnerability,
        "vulnerable_version_range",
        "alert.security_vulnerability.vulnerable_version_range",
    )
    ghsa = _str(advisory, "ghsa_id", "alert.security_advisory.ghsa_id")
    cve = _str(advisory, "cve_id", "alert.security_advisory.cve_id")
    summary = _str(advisory, "summary", "alert.security_advisory.summary")
    subject = " ".join(p for p in (package, versions) if p)
    title = f"GitHub Dependabot: {summary or ghsa or cve or 'vulnerable dependency'}"
    if subject:
        title += f" ({subject})"
    _add_url(found, alert, "html_url", "alert.html_url")
    _add_references(found, advisory, "alert.security_advisory")
    _add_user(found, alert.get("dismissed_by"), "alert.dismissed_by")
    manifest = _str(dependency, "manifest_path", "alert.dependency.manifest_path")
    return _Parts(title, ghsa or cve, _dependabot_severity(alert), manifest)


def _dependabot_severity(alert: dict[str, Any]) -> str | None:
    # The vulnerability's severity is the one for this package; the advisory's is the fallback.
    vulnerability = _obj(alert, "security_vulnerability", "alert.security_vulnerability")
    advisory = _obj(alert, "security_advisory", "alert.security_advisory")
    return _severity(
        _str(vulnerability, "severity", "alert.security_vulnerability.severity")
    ) or _severity(_str(advisory, "severity", "alert.security_advisory.severity"))


def _vulnerability(alert: dict[str, Any], found: ObservableSet) -> _Parts:
    package = _str(alert, "affected_package_name", "alert.affected_package_name")
    versions = _str(alert, "affected_range", "alert.affected_range")
    ghsa = _str(alert, "ghsa_id", "alert.ghsa_id")
    external = _str(alert, "external_identifier", "alert.external_identifier")
    subject = " ".join(p for p in (package, versions) if p) or "a dependency"
    ident = ", ".join(p for p in (ghsa, external) if p)
    title = f"GitHub vulnerability alert: {subject}" + (f" ({ident})" if ident else "")
    _add_url(found, alert, "html_url", "alert.html_url")
    _add_url(found, alert, "external_reference", "alert.external_reference")
    _add_user(found, alert.get("dismisser"), "alert.dismisser")
    severity = _severity(_str(alert, "severity", "alert.severity"))
    return _Parts(title, ghsa or external, severity)


def _advisory(advisory: dict[str, Any], path: str, found: ObservableSet) -> _Parts:
    ghsa = _str(advisory, "ghsa_id", f"{path}.ghsa_id")
    cve = _str(advisory, "cve_id", f"{path}.cve_id")
    summary = _str(advisory, "summary", f"{path}.summary")
    ident = ghsa or cve or "advisory"
    title = f"GitHub security advisory {ident}" + (f": {summary}" if summary else "")
    _add_url(found, advisory, "html_url", f"{path}.html_url")
    _add_references(found, advisory, path)
    return _Parts(title, ghsa or cve, _severity(_str(advisory, "severity", f"{path}.severity")))


# --- Standard Webhooks -----------------------------------------------------------------------


def parse_standard_event(doc: dict[str, Any], msg_id: str, source: str) -> NormalizedAlert:
    """Normalise a Standard Webhooks event `{"type", "timestamp", "data": {...}}`.

    `msg_id` is the verified `webhook-id` (source_id and idempotency key), `source` the name the
    integration is configured under (alert source and node). In `data`, all optional:
    `title` (else the type), `severity` or `level` (0–16 or a word: critical, high,
    medium/moderate, low, info; default 3), `rule_id` (else the type), `observables`
    (a list of {"type", "value"}). Stricter than the GitHub parser: the sender is ours to
    configure, so a value we cannot use is an error it should see, not something we guess at.
    """
    if not isinstance(source, str) or not source.strip():
        raise ValueError("source must be a non-empty string")
    if not isinstance(doc, dict):
        raise InvalidAlertError("payload must be a JSON object")
    if not isinstance(msg_id, str) or not msg_id.strip():
        raise InvalidAlertError("webhook-id is required", field="webhook-id")
    event_type = _str(doc, "type")
    if not event_type:
        raise InvalidAlertError("type is required", field="type")
    data = _obj(doc, "data")

    timestamp = doc.get("timestamp")
    if timestamp is None:
        time_original, time_utc = _now()
    elif isinstance(timestamp, str):
        time_original, time_utc = timestamp, wazuh_timestamp(timestamp)  # field "timestamp"
    else:
        raise InvalidAlertError(
            f"timestamp must be an ISO 8601 string, got {type(timestamp).__name__}",
            field="timestamp",
        )

    level = DEFAULT_LEVEL
    for key in ("severity", "level"):
        if data.get(key) is not None:
            level = _standard_level(data[key], f"data.{key}")
            break

    return NormalizedAlert(
        source=source,
        source_id=msg_id,
        node=source,
        time_original=time_original,
        time_utc=time_utc,
        title=_clip(_str(data, "title", "data.title") or event_type, _MAX_TITLE),
        level=level,
        rule_id=_str(data, "rule_id", "data.rule_id") or event_type,
        groups=[source, event_type],
        observables=_standard_observables(data.get("observables")).to_list(),
    )


def _standard_level(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= MAX_LEVEL:
            return value
        raise InvalidAlertError(f"{field} must be between 0 and {MAX_LEVEL}", field=field)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isascii() and text.isdigit() and len(text) <= 2:
            return _standard_level(int(text), field)
        if text in STANDARD_SEVERITY_WORDS:
            return STANDARD_SEVERITY_WORDS[text]
    words = ", ".join(STANDARD_SEVERITY_WORDS)
    raise InvalidAlertError(
        f"{field} must be a number 0-{MAX_LEVEL} or one of: {words}", field=field
    )


def _standard_observables(value: Any) -> ObservableSet:
    found = ObservableSet()
    if value is None:
        return found
    if not isinstance(value, list):
        raise InvalidAlertError("data.observables must be a list", field="data.observables")
    if len(value) > MAX_STANDARD_OBSERVABLES:
        raise InvalidAlertError(
            f"data.observables holds more than {MAX_STANDARD_OBSERVABLES} items",
            field="data.observables",
        )
    for i, item in enumerate(value):
        path = f"data.observables[{i}]"
        if not isinstance(item, dict):
            raise InvalidAlertError(f"{path} must be an object", field=path)
        type_ = item.get("type")
        if type_ not in OBSERVABLE_TYPES:
            raise InvalidAlertError(
                f"{path}.type must be one of: {', '.join(OBSERVABLE_TYPES)}", field=f"{path}.type"
            )
        raw = item.get("value")
        if not isinstance(raw, str):
            raise InvalidAlertError(f"{path}.value must be a string", field=f"{path}.value")
        if not _add_standard_observable(found, type_, raw, path):
            raise InvalidAlertError(f"{path}.value is not a valid {type_}", field=f"{path}.value")
    return found


def _add_standard_observable(found: ObservableSet, type_: str, raw: str, path: str) -> bool:
    """Validate and add; False only when the value is not a valid `type_`."""
    if type_ == "ip":
        info = classify_ip(raw)
        if info is not None:
            found.add("ip", info.value, path, kind=info.kind, public=info.public)
        return info is not None
    if type_ == "hash":
        digest = normalize_hash(raw)
        if digest is not None:
            found.add("hash", digest, path, kind=hash_kind(digest))
        return digest is not None
    normaliser = {
        "domain": normalize_domain,
        "hostname": normalize_hostname,
        "url": normalize_url,
        "user": _user_name,
    }[type_]
    value = normaliser(raw)
    if value is not None:
        found.add(type_, value, path)  # a repeat is fine: ObservableSet drops it
    return value is not None


# --- helpers ---------------------------------------------------------------------------------


def _delivery(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidAlertError("X-GitHub-Delivery is required", field="X-GitHub-Delivery")
    text = value.strip()
    if len(text) > _MAX_ID or any(c.isspace() for c in text):
        raise InvalidAlertError("X-GitHub-Delivery is not a delivery id", field="X-GitHub-Delivery")
    return text


def _obj(
    parent: dict[str, Any], key: str, path: str | None = None, *, required: bool = False
) -> dict[str, Any]:
    """`parent[key]` when it is an object; {} when absent or null; InvalidAlertError otherwise."""
    value = parent.get(key)
    field = path or key
    if value is None:
        if required:
            raise InvalidAlertError(f"{field} is required", field=field)
        return {}
    if not isinstance(value, dict):
        raise InvalidAlertError(
            f"{field} must be an object, got {type(value).__name__}", field=field
        )
    return value


def _str(parent: dict[str, Any], key: str, path: str | None = None) -> str | None:
    """A stripped non-empty string, None when absent/null/empty; InvalidAlertError otherwise."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        field = path or key
        raise InvalidAlertError(
            f"{field} must be a string, got {type(value).__name__}", field=field
        )
    return value.strip() or None


def _int(parent: dict[str, Any], key: str, path: str) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAlertError(f"{path} must be an integer", field=path)
    return value


def _severity(word: str | None) -> str | None:
    if word is None:
        return None
    text = word.strip().lower()
    text = _SEVERITY_WORDS.get(text, text)
    return text if text in SEVERITY_LEVELS else None


def _package_name(parent: dict[str, Any], path: str) -> str | None:
    package = _obj(parent, "package", f"{path}.package")
    return _str(package, "name", f"{path}.package.name")


def _event_time(obj: dict[str, Any], path: str, keys: Iterable[str]) -> tuple[str, datetime]:
    for key in keys:
        value = _str(obj, key, f"{path}.{key}")
        if value is None:
            continue
        try:
            return value, wazuh_timestamp(value)
        except InvalidAlertError as exc:
            raise InvalidAlertError(exc.message, field=f"{path}.{key}") from None
    return _now()  # why: some payloads (a legacy vulnerability alert's actions) carry no time


def _now() -> tuple[str, datetime]:
    now = datetime.now(UTC)
    return now.isoformat().replace("+00:00", "Z"), now


def _add_url(found: ObservableSet, parent: dict[str, Any], key: str, path: str) -> None:
    url = normalize_url(_str(parent, key, path))
    if url is not None:
        found.add("url", url, path)


def _add_references(found: ObservableSet, advisory: dict[str, Any], path: str) -> None:
    references = advisory.get("references")
    if not isinstance(references, list):
        return  # why: informational links; a shape we do not know is not worth refusing for
    for ref in references[:_MAX_REFERENCES]:
        if isinstance(ref, dict):
            url = normalize_url(ref.get("url"))
            if url is not None:
                found.add("url", url, f"{path}.references")


def _add_user(found: ObservableSet, account: Any, path: str) -> None:
    """Add a GitHub account's login, unless it is a bot (dependabot[bot] is not a pivot)."""
    if account is None:
        return
    if not isinstance(account, dict):
        raise InvalidAlertError(f"{path} must be an object", field=path)
    login = _str(account, "login", f"{path}.login")
    if login is None or account.get("type") == "Bot" or login.endswith("[bot]"):
        return
    found.add("user", login, f"{path}.login")


def _user_name(value: str) -> str | None:
    text = value.strip()
    return text if text and len(text) <= 256 else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
