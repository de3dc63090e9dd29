"""GitHub security webhooks and Standard Webhooks events → NormalizedAlert.

Fixtures follow the shapes GitHub documents for these webhook payloads (trimmed: the real
repository/sender objects carry dozens more *_url fields, which the parser ignores).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from casefold.errors import InvalidAlertError
from casefold.sources.github import github_severity, parse_github_event, parse_standard_event
from casefold.sources.model import NormalizedAlert, Observable

DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
LEAKED = "ghp_R3alLo0kingT0kenValue1234567890abcd"


def repository() -> dict[str, Any]:
    return {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "hello-world",
        "full_name": "octo-org/hello-world",
        "private": True,
        "owner": {"login": "octo-org", "id": 21031067, "type": "Organization"},
        "html_url": "https://github.com/octo-org/hello-world",
        "url": "https://api.github.com/repos/octo-org/hello-world",
        "hooks_url": "https://api.github.com/repos/octo-org/hello-world/hooks",
        "default_branch": "main",
        "visibility": "private",
    }


def sender(login: str = "octocat", type_: str = "User") -> dict[str, Any]:
    return {
        "login": login,
        "id": 583231,
        "type": type_,
        "site_admin": False,
        "html_url": f"https://github.com/{login}",
    }


def code_scanning(action: str = "created", **rule: Any) -> dict[str, Any]:
    return {
        "action": action,
        "alert": {
            "number": 42,
            "created_at": "2024-05-02T09:15:00Z",
            "updated_at": "2024-05-02T09:16:30Z",
            "url": "https://api.github.com/repos/octo-org/hello-world/code-scanning/alerts/42",
            "html_url": "https://github.com/octo-org/hello-world/security/code-scanning/42",
            "state": "open",
            "fixed_at": None,
            "dismissed_by": None,
            "dismissed_at": None,
            "dismissed_reason": None,
            "rule": {
                "id": "py/sql-injection",
                "severity": "error",
                "security_severity_level": "high",
                "description": "SQL query built from user-controlled sources",
                "name": "py/sql-injection",
                "tags": ["security", "external/cwe/cwe-089"],
                **rule,
            },
            "tool": {"name": "CodeQL", "guid": None, "version": "2.17.1"},
            "most_recent_instance": {
                "ref": "refs/heads/main",
                "analysis_key": ".github/workflows/codeql.yml:analyze",
                "category": ".github/workflows/codeql.yml:analyze/language:python",
                "state": "open",
                "commit_sha": "9f2a3c1d0b7e6f5a4c3b2a1908f7e6d5c4b3a291",
                "message": {"text": "This SQL query depends on a user-provided value."},
                "location": {
                    "path": "app/db.py",
                    "start_line": 87,
                    "end_line": 87,
                    "start_column": 9,
                    "end_column": 41,
                },
                "classifications": [],
            },
            "instances_url": "https://api.github.com/repos/octo-org/hello-world/code-scanning/alerts/42/instances",
        },
        "ref": "refs/heads/main",
        "commit_oid": "9f2a3c1d0b7e6f5a4c3b2a1908f7e6d5c4b3a291",
        "repository": repository(),
        "organization": {"login": "octo-org", "id": 21031067},
        "sender": sender(),
    }


def secret_scanning(action: str = "created") -> dict[str, Any]:
    return {
        "action": action,
        "alert": {
            "number": 7,
            "created_at": "2024-05-03T11:00:00Z",
            "updated_at": None,
            "url": "https://api.github.com/repos/octo-org/hello-world/secret-scanning/alerts/7",
            "html_url": "https://github.com/octo-org/hello-world/security/secret-scanning/7",
            "locations_url": "https://api.github.com/repos/octo-org/hello-world/secret-scanning/alerts/7/locations",
            "state": "open",
            "resolution": None,
            "resolved_at": None,
            "resolved_by": None,
            "secret_type": "github_personal_access_token",
            "secret_type_display_name": "GitHub Personal Access Token",
            "secret": LEAKED,  # the webhook should not carry it, but a parser must not trust that
            "validity": "active",
            "push_protection_bypassed": True,
            "push_protection_bypassed_by": sender("mallory"),
        },
        "repository": repository(),
        "sender": sender("github-advanced-security[bot]", "Bot"),
    }


def dependabot(action: str = "created", severity: str = "critical") -> dict[str, Any]:
    advisory = {
        "ghsa_id": "GHSA-jfh8-c2jp-5v3q",
        "cve_id": "CVE-2021-44228",
        "summary": "Remote code injection in Log4j",
        "description": "# Summary\n\nLog4j2 JNDI features ... " + "x" * 5000,
        "severity": severity,
        "identifiers": [
            {"value": "GHSA-jfh8-c2jp-5v3q", "type": "GHSA"},
            {"value": "CVE-2021-44228", "type": "CVE"},
        ],
        "references": [
            {"url": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"},
            {"url": "https://github.com/advisories/GHSA-jfh8-c2jp-5v3q"},
            {"url": "not a url"},
        ],
        "published_at": "2021-12-10T00:40:56Z",
        "updated_at": "2024-01-15T19:59:07Z",
        "withdrawn_at": None,
        "vulnerabilities": [],
        "cvss": {"vector_string": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "score": 10.0},
        "cwes": [{"cwe_id": "CWE-502", "name": "Deserialization of Untrusted Data"}],
    }
    return {
        "action": action,
        "alert": {
            "number": 3,
            "state": "open",
            "dependency": {
                "package": {"ecosystem": "maven", "name": "org.apache.logging.log4j:log4j-core"},
                "manifest_path": "pom.xml",
                "scope": "runtime",
            },
            "security_advisory": advisory,
            "security_vulnerability": {
                "package": {"ecosystem": "maven", "name": "org.apache.logging.log4j:log4j-core"},
                "severity": severity,
                "vulnerable_version_range": ">= 2.13.0, < 2.15.0",
                "first_patched_version": {"identifier": "2.15.0"},
            },
            "url": "https://api.github.com/repos/octo-org/hello-world/dependabot/alerts/3",
            "html_url": "https://github.com/octo-org/hello-world/security/dependabot/3",
            "created_at": "2024-05-04T08:00:00Z",
            "updated_at": "2024-05-04T08:00:01Z",
            "dismissed_at": None,
            "dismissed_by": None,
            "fixed_at": None,
            "auto_dismissed_at": None,
        },
        "repository": repository(),
        "organization": {"login": "octo-org", "id": 21031067},
        "sender": sender("dependabot[bot]", "Bot"),
    }


def vulnerability(action: str = "create") -> dict[str, Any]:
    return {
        "action": action,
        "alert": {
            "id": 91095730,
            "number": 1,
            "affected_range": "< 1.2.1",
            "affected_package_name": "minimist",
            "external_reference": "https://nvd.nist.gov/vuln/detail/CVE-2020-7598",
            "external_identifier": "CVE-2020-7598",
            "ghsa_id": "GHSA-vh95-rmgr-6w4m",
            "severity": "moderate",
            "fixed_in": "1.2.1",
            "created_at": "2020-03-11T20:31:53Z",
            "state": "open",
        },
        "repository": repository(),
        "sender": sender("github", "Organization"),
    }


def advisory(action: str = "published", severity: str = "high") -> dict[str, Any]:
    return {
        "action": action,
        "security_advisory": {
            "ghsa_id": "GHSA-4r4m-qw57-chr8",
            "cve_id": "CVE-2024-3094",
            "summary": "Malicious code in xz-utils",
            "description": "Malicious code was discovered in the upstream tarballs of xz.",
            "severity": severity,
            "identifiers": [{"value": "GHSA-4r4m-qw57-chr8", "type": "GHSA"}],
            "references": [{"url": "https://nvd.nist.gov/vuln/detail/CVE-2024-3094"}],
            "published_at": "2024-03-29T18:30:00Z",
            "updated_at": "2024-04-02T10:00:00Z",
            "withdrawn_at": None,
            "vulnerabilities": [
                {
                    "package": {"ecosystem": "other", "name": "xz"},
                    "severity": severity,
                    "vulnerable_version_range": ">= 5.6.0, <= 5.6.1",
                    "first_patched_version": None,
                }
            ],
        },
    }


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def alert_text(alert: NormalizedAlert) -> str:
    return json.dumps(alert.to_dict())


# --- each event type -------------------------------------------------------------------------


def test_code_scanning_alert() -> None:
    alert = parse_github_event("code_scanning_alert", DELIVERY, code_scanning())
    assert alert is not None
    assert alert.source == "github" and alert.source_id == DELIVERY
    assert alert.node == "octo-org/hello-world"
    assert alert.dedup_key == f"github|octo-org/hello-world|{DELIVERY}"
    assert alert.title == (
        "GitHub code scanning (CodeQL): SQL query built from user-controlled sources"
        " in app/db.py:87"
    )
    assert alert.level == 12  # security_severity_level "high"
    assert alert.rule_id == "py/sql-injection"
    assert alert.groups == ["github", "code_scanning_alert", "created"]
    assert alert.location == "app/db.py:87"
    assert alert.time_original == "2024-05-02T09:16:30Z"
    assert alert.time_utc == utc("2024-05-02T09:16:30Z")
    assert alert.observables == [
        Observable(
            "url",
            "https://github.com/octo-org/hello-world/security/code-scanning/42",
            "alert.html_url",
        ),
        Observable("user", "octocat", "sender.login"),
    ]
    assert alert.mitre_ids == [] and alert.agent_id is None


@pytest.mark.parametrize(
    ("rule", "level"),
    [
        ({"security_severity_level": "critical"}, 15),
        ({"security_severity_level": "medium"}, 8),
        ({"security_severity_level": "low"}, 5),
        # Non-security queries have only the SARIF severity.
        ({"security_severity_level": None, "severity": "error"}, 8),
        ({"security_severity_level": None, "severity": "warning"}, 5),
        ({"security_severity_level": None, "severity": "note"}, 3),
        ({"security_severity_level": None, "severity": None}, 3),
    ],
)
def test_code_scanning_levels(rule: dict[str, Any], level: int) -> None:
    alert = parse_github_event("code_scanning_alert", DELIVERY, code_scanning(**rule))
    assert alert is not None and alert.level == level


def test_code_scanning_closing_action_is_quiet_and_named() -> None:
    doc = code_scanning("closed_by_user")
    doc["alert"]["dismissed_by"] = sender("alice")
    alert = parse_github_event("code_scanning_alert", DELIVERY, doc)
    assert alert is not None
    assert alert.level == 3
    assert alert.title.endswith(" [closed_by_user]")
    assert alert.groups == ["github", "code_scanning_alert", "closed_by_user"]
    users = [o for o in alert.observables if o.type == "user"]
    assert users == [
        Observable("user", "alice", "alert.dismissed_by.login"),
        Observable("user", "octocat", "sender.login"),
    ]


def test_code_scanning_minimal_alert() -> None:
    doc = {"action": "appeared_in_branch", "alert": {"rule": {"id": "js/xss"}}}
    alert = parse_github_event("code_scanning_alert", DELIVERY, doc)
    assert alert is not None
    assert alert.title == "GitHub code scanning: js/xss [appeared_in_branch]"
    assert alert.node == "github" and alert.location is None and alert.level == 3
    assert alert.time_utc.tzinfo is UTC
    assert abs(alert.time_utc - datetime.now(UTC)) < timedelta(seconds=10)


def test_secret_scanning_alert_never_holds_the_secret() -> None:
    doc = secret_scanning()
    alert = parse_github_event("secret_scanning_alert", DELIVERY, doc)
    assert alert is not None
    assert LEAKED not in alert_text(alert) and LEAKED not in repr(alert)
    assert alert.title == "GitHub secret scanning: GitHub Personal Access Token exposed"
    assert alert.level == 12
    assert alert.rule_id == "github_personal_access_token"
    assert alert.groups == ["github", "secret_scanning_alert", "created"]
    assert alert.mitre_ids == ["T1552"] and alert.tactics == ["Credential Access"]
    assert alert.time_original == "2024-05-03T11:00:00Z"  # updated_at null → created_at
    # The bot sender is no pivot; the person who bypassed push protection is.
    assert alert.observables == [
        Observable(
            "url",
            "https://github.com/octo-org/hello-world/security/secret-scanning/7",
            "alert.html_url",
        ),
        Observable("user", "mallory", "alert.push_protection_bypassed_by.login"),
    ]
    assert doc["alert"]["secret"] == LEAKED  # the payload itself is not modified


@pytest.mark.parametrize(
    ("action", "level"),
    [("created", 12), ("reopened", 12), ("publicly_leaked", 15), ("resolved", 3), ("revoked", 3)],
)
def test_secret_scanning_levels(action: str, level: int) -> None:
    alert = parse_github_event("secret_scanning_alert", DELIVERY, secret_scanning(action))
    assert alert is not None and alert.level == level


def test_dependabot_alert() -> None:
    alert = parse_github_event("dependabot_alert", DELIVERY, dependabot())
    assert alert is not None
    assert alert.title == (
        "GitHub Dependabot: Remote code injection in Log4j"
        " (org.apache.logging.log4j:log4j-core >= 2.13.0, < 2.15.0)"
    )
    assert alert.level == 15
    assert alert.rule_id == "GHSA-jfh8-c2jp-5v3q"
    assert alert.location == "pom.xml"
    assert alert.groups == ["github", "dependabot_alert", "created"]
    assert alert.time_original == "2024-05-04T08:00:01Z"
    assert [(o.type, o.value, o.field) for o in alert.observables] == [
        (
            "url",
            "https://github.com/octo-org/hello-world/security/dependabot/3",
            "alert.html_url",
        ),
        (
            "url",
            "https://nvd.nist.gov/vuln/detail/CVE-2021-44228",
            "alert.security_advisory.references",
        ),
        (
            "url",
            "https://github.com/advisories/GHSA-jfh8-c2jp-5v3q",
            "alert.security_advisory.references",
        ),
    ]  # dependabot[bot] sender skipped, "not a url" skipped


@pytest.mark.parametrize(
    ("severity", "level"),
    [("critical", 15), ("high", 12), ("medium", 8), ("moderate", 8), ("low", 5), ("bogus", 3)],
)
def test_dependabot_levels(severity: str, level: int) -> None:
    alert = parse_github_event("dependabot_alert", DELIVERY, dependabot(severity=severity))
    assert alert is not None and alert.level == level


def test_dependabot_falls_back_to_advisory_severity() -> None:
    doc = dependabot(severity="high")
    doc["alert"]["security_vulnerability"]["severity"] = None
    doc["alert"]["security_advisory"]["severity"] = "low"
    alert = parse_github_event("dependabot_alert", DELIVERY, doc)
    assert alert is not None and alert.level == 5
    assert github_severity("dependabot_alert", doc) == "low"


@pytest.mark.parametrize("action", ["fixed", "dismissed", "auto_dismissed"])
def test_dependabot_closing_actions_are_quiet(action: str) -> None:
    alert = parse_github_event("dependabot_alert", DELIVERY, dependabot(action))
    assert alert is not None and alert.level == 3 and alert.title.endswith(f" [{action}]")


def test_repository_vulnerability_alert() -> None:
    alert = parse_github_event("repository_vulnerability_alert", DELIVERY, vulnerability())
    assert alert is not None
    assert alert.title == (
        "GitHub vulnerability alert: minimist < 1.2.1 (GHSA-vh95-rmgr-6w4m, CVE-2020-7598)"
    )
    assert alert.level == 8  # moderate
    assert alert.rule_id == "GHSA-vh95-rmgr-6w4m"
    assert alert.groups == ["github", "repository_vulnerability_alert", "create"]
    assert alert.time_original == "2020-03-11T20:31:53Z"
    assert alert.observables == [
        Observable(
            "url", "https://nvd.nist.gov/vuln/detail/CVE-2020-7598", "alert.external_reference"
        ),
        Observable("user", "github", "sender.login"),
    ]
    quiet = parse_github_event("repository_vulnerability_alert", DELIVERY, vulnerability("resolve"))
    assert quiet is not None and quiet.level == 3


def test_security_advisory() -> None:
    alert = parse_github_event("security_advisory", DELIVERY, advisory())
    assert alert is not None
    assert alert.title == "GitHub security advisory GHSA-4r4m-qw57-chr8: Malicious code in xz-utils"
    assert alert.level == 12
    assert alert.rule_id == "GHSA-4r4m-qw57-chr8"
    assert alert.node == "github"  # global advisories belong to no repository
    assert alert.groups == ["github", "security_advisory", "published"]
    assert alert.time_original == "2024-04-02T10:00:00Z"
    assert alert.observables == [
        Observable(
            "url",
            "https://nvd.nist.gov/vuln/detail/CVE-2024-3094",
            "security_advisory.references",
        )
    ]
    withdrawn = parse_github_event("security_advisory", DELIVERY, advisory("withdrawn"))
    assert withdrawn is not None and withdrawn.level == 3
    assert withdrawn.title.endswith(" [withdrawn]")


def test_node_falls_back_to_organization() -> None:
    doc = code_scanning()
    del doc["repository"]
    alert = parse_github_event("code_scanning_alert", DELIVERY, doc)
    assert alert is not None and alert.node == "octo-org"


def test_long_titles_are_clipped() -> None:
    doc = advisory()
    doc["security_advisory"]["summary"] = "s" * 1000
    alert = parse_github_event("security_advisory", DELIVERY, doc)
    assert alert is not None and len(alert.title) == 300 and alert.title.endswith("…")


# --- ignored events --------------------------------------------------------------------------


def test_ping_is_accepted_and_ignored() -> None:
    ping = {"zen": "Design for failure.", "hook_id": 123456, "hook": {"type": "Repository"}}
    assert parse_github_event("ping", DELIVERY, ping) is None


@pytest.mark.parametrize("event", ["push", "issues", "workflow_run", "", "CODE_SCANNING_ALERT"])
def test_unknown_events_are_ignored_even_when_malformed(event: str) -> None:
    assert parse_github_event(event, DELIVERY, {"action": 5}) is None
    assert parse_github_event(event, "", []) is None  # type: ignore[arg-type]


# --- bad input -------------------------------------------------------------------------------


def _mutate(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[key]
    target[last] = value
    return doc


@pytest.mark.parametrize(
    ("event", "factory", "path", "value"),
    [
        ("code_scanning_alert", code_scanning, "action", 3),
        ("code_scanning_alert", code_scanning, "alert", "nope"),
        ("code_scanning_alert", code_scanning, "alert.rule", ["py/sql-injection"]),
        ("code_scanning_alert", code_scanning, "alert.rule.id", 17),
        ("code_scanning_alert", code_scanning, "alert.rule.security_severity_level", 9.8),
        ("code_scanning_alert", code_scanning, "alert.most_recent_instance.location.path", []),
        (
            "code_scanning_alert",
            code_scanning,
            "alert.most_recent_instance.location.start_line",
            "87",
        ),
        ("code_scanning_alert", code_scanning, "alert.updated_at", 1714641390),
        ("code_scanning_alert", code_scanning, "alert.updated_at", "yesterday"),
        ("code_scanning_alert", code_scanning, "alert.dismissed_by", "alice"),
        ("code_scanning_alert", code_scanning, "repository", "octo-org/hello-world"),
        ("code_scanning_alert", code_scanning, "repository.full_name", 5),
        ("code_scanning_alert", code_scanning, "sender", ["octocat"]),
        ("code_scanning_alert", code_scanning, "sender.login", {"x": 1}),
        ("secret_scanning_alert", secret_scanning, "alert.secret_type", True),
        ("dependabot_alert", dependabot, "alert.security_advisory", "GHSA"),
        ("dependabot_alert", dependabot, "alert.security_advisory.ghsa_id", 1),
        ("dependabot_alert", dependabot, "alert.dependency.package.name", 1),
        ("dependabot_alert", dependabot, "alert.security_vulnerability.severity", 9),
        ("repository_vulnerability_alert", vulnerability, "alert.affected_package_name", 1),
        ("security_advisory", advisory, "security_advisory", None),
        ("security_advisory", advisory, "security_advisory.summary", ["x"]),
        ("security_advisory", advisory, "security_advisory.updated_at", "2024-04-02"),
    ],
)
def test_wrong_types_name_the_field(event: str, factory: Any, path: str, value: Any) -> None:
    with pytest.raises(InvalidAlertError) as exc:
        parse_github_event(event, DELIVERY, _mutate(factory(), path, value))
    assert exc.value.field == path


def test_missing_alert_object() -> None:
    with pytest.raises(InvalidAlertError) as exc:
        parse_github_event("dependabot_alert", DELIVERY, {"action": "created"})
    assert exc.value.field == "alert"


def test_payload_must_be_an_object() -> None:
    with pytest.raises(InvalidAlertError, match="JSON object"):
        parse_github_event("dependabot_alert", DELIVERY, [dependabot()])  # type: ignore[arg-type]


@pytest.mark.parametrize("delivery", ["", "   ", "a b", "x" * 200, None])
def test_delivery_id_is_required(delivery: Any) -> None:
    with pytest.raises(InvalidAlertError) as exc:
        parse_github_event("code_scanning_alert", delivery, code_scanning())
    assert exc.value.field == "X-GitHub-Delivery"


def test_github_severity_is_lenient() -> None:
    assert github_severity("code_scanning_alert", code_scanning()) == "high"
    assert github_severity("security_advisory", advisory(severity="moderate")) == "medium"
    assert github_severity("repository_vulnerability_alert", vulnerability()) == "medium"
    assert github_severity("secret_scanning_alert", secret_scanning()) is None
    assert github_severity("ping", {}) is None
    assert github_severity("code_scanning_alert", {"alert": "bad"}) is None
    assert github_severity("dependabot_alert", None) is None


# --- Standard Webhooks -----------------------------------------------------------------------


def standard(**data: Any) -> dict[str, Any]:
    return {"type": "detection.created", "timestamp": "2024-05-05T12:00:00.250+02:00", "data": data}


def test_standard_event() -> None:
    doc = standard(
        title="Beaconing to known C2",
        severity="high",
        rule_id="NDR-42",
        observables=[
            {"type": "ip", "value": "::ffff:116.163.24.195"},
            {"type": "ip", "value": "10.1.2.3"},
            {"type": "domain", "value": "Evil.Example.COM."},
            {"type": "hash", "value": "D41D8CD98F00B204E9800998ECF8427F"},
            {"type": "hash", "value": "d41d8cd98f00b204e9800998ecf8427e"},  # empty file: dropped
            {"type": "url", "value": " https://evil.example.com/a?b=c "},
            {"type": "user", "value": " jdoe "},
            {"type": "hostname", "value": "WS-0042"},
            {"type": "ip", "value": "116.163.24.195"},  # repeat: dropped
        ],
    )
    alert = parse_standard_event(doc, "msg_p5jXN8AQM9LWM0D4loKWxJek", "netsensor")
    assert alert.source == "netsensor" and alert.node == "netsensor"
    assert alert.source_id == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert alert.title == "Beaconing to known C2" and alert.level == 12
    assert alert.rule_id == "NDR-42"
    assert alert.groups == ["netsensor", "detection.created"]
    assert alert.time_original == "2024-05-05T12:00:00.250+02:00"
    assert alert.time_utc == datetime(2024, 5, 5, 10, 0, 0, 250000, tzinfo=UTC)
    assert alert.observables == [
        Observable("ip", "116.163.24.195", "data.observables[0]", kind="ipv4", public=True),
        Observable("ip", "10.1.2.3", "data.observables[1]", kind="ipv4", public=False),
        Observable("domain", "evil.example.com", "data.observables[2]"),
        Observable("hash", "d41d8cd98f00b204e9800998ecf8427f", "data.observables[3]", kind="md5"),
        Observable("url", "https://evil.example.com/a?b=c", "data.observables[5]"),
        Observable("user", "jdoe", "data.observables[6]"),
        Observable("hostname", "ws-0042", "data.observables[7]"),
    ]


def test_standard_event_defaults() -> None:
    alert = parse_standard_event({"type": "contact.created"}, "msg_1", "crm")
    assert alert.title == "contact.created" and alert.rule_id == "contact.created"
    assert alert.level == 3 and alert.observables == []
    assert abs(alert.time_utc - datetime.now(UTC)) < timedelta(seconds=10)


@pytest.mark.parametrize(
    ("data", "level"),
    [
        ({"severity": 0}, 0),
        ({"severity": 16}, 16),
        ({"level": 7}, 7),
        ({"level": "10"}, 10),
        ({"severity": "CRITICAL"}, 15),
        ({"severity": "moderate"}, 8),
        ({"severity": "low"}, 5),
        ({"severity": "info"}, 3),
        ({"severity": None, "level": 9}, 9),
        ({"severity": "high", "level": 2}, 12),  # severity wins
    ],
)
def test_standard_levels(data: dict[str, Any], level: int) -> None:
    assert parse_standard_event(standard(**data), "m", "s").level == level


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"data": {}}, "type"),
        ({"type": ""}, "type"),
        ({"type": 5}, "type"),
        ({"type": "t", "data": []}, "data"),
        ({"type": "t", "timestamp": 1714900000}, "timestamp"),
        ({"type": "t", "timestamp": "2024-05-05T12:00:00"}, "timestamp"),  # no offset
        ({"type": "t", "data": {"title": 5}}, "data.title"),
        ({"type": "t", "data": {"rule_id": []}}, "data.rule_id"),
        ({"type": "t", "data": {"severity": 17}}, "data.severity"),
        ({"type": "t", "data": {"severity": -1}}, "data.severity"),
        ({"type": "t", "data": {"severity": True}}, "data.severity"),
        ({"type": "t", "data": {"severity": "urgent"}}, "data.severity"),
        ({"type": "t", "data": {"level": "99"}}, "data.level"),
        ({"type": "t", "data": {"level": 7.5}}, "data.level"),
        ({"type": "t", "data": {"observables": "1.2.3.4"}}, "data.observables"),
        ({"type": "t", "data": {"observables": ["1.2.3.4"]}}, "data.observables[0]"),
        (
            {"type": "t", "data": {"observables": [{"type": "email", "value": "a@b.c"}]}},
            "data.observables[0].type",
        ),
        (
            {"type": "t", "data": {"observables": [{"type": "ip", "value": 16909060}]}},
            "data.observables[0].value",
        ),
        (
            {
                "type": "t",
                "data": {
                    "observables": [
                        {"type": "ip", "value": "1.2.3.4"},
                        {"type": "ip", "value": "1.2.3.400"},
                    ]
                },
            },
            "data.observables[1].value",
        ),
        (
            {"type": "t", "data": {"observables": [{"type": "hash", "value": "abc"}]}},
            "data.observables[0].value",
        ),
        (
            {"type": "t", "data": {"observables": [{"type": "url", "value": "ftp://x"}]}},
            "data.observables[0].value",
        ),
        (
            {"type": "t", "data": {"observables": [{"type": "hostname", "value": "localhost"}]}},
            "data.observables[0].value",
        ),
        (
            {"type": "t", "data": {"observables": [{"type": "user", "value": "  "}]}},
            "data.observables[0].value",
        ),
        (
            {"type": "t", "data": {"observables": [{"type": "ip", "value": "1.2.3.4"}] * 101}},
            "data.observables",
        ),
    ],
)
def test_standard_bad_input_names_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAlertError) as exc:
        parse_standard_event(doc, "msg_1", "crm")
    assert exc.value.field == field


def test_standard_requires_ids_and_object() -> None:
    with pytest.raises(InvalidAlertError) as exc:
        parse_standard_event({"type": "t"}, "", "crm")
    assert exc.value.field == "webhook-id"
    with pytest.raises(InvalidAlertError, match="JSON object"):
        parse_standard_event(["t"], "m", "crm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        parse_standard_event({"type": "t"}, "m", " ")
