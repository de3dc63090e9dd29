"""The local IoC provider: CSV and STIX 2.1 files, matching rules, and live reloading."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from casefold.connectors.local_ioc import LocalIoC, pattern_values

CSV = """\
# Casefold test list
type,value,verdict,score,description,source,tags
ip,203.0.113.7,malicious,90,Cobalt Strike C2,abuse.ch,c2;cobaltstrike
ipv6,2001:DB8:0:0::1,suspicious,,Scanner,,
cidr,198.51.100.0/24,suspicious,40,Bulletproof hoster,spamhaus,
sha256,E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B856,,,Loader,,
md5,0123456789ABCDEF0123456789ABCDEF,malicious,,,,
domain,Evil.Example.,,,,,
domain,*.bad.example,malicious,70,Phishing kit,,phishing
url,HTTP://Phish.Example/Login?x=1,,,,,
ip,192.0.2.10,clean,,Our scanner,,
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def touch_later(path: Path) -> None:
    # why: a rewrite within the filesystem's timestamp granularity could keep mtime and size
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def bundle(*objects: dict[str, Any]) -> str:
    return json.dumps({"type": "bundle", "id": "bundle--1", "objects": list(objects)})


def indicator(pattern: str, ident: str = "indicator--1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": ident,
        "name": extra.pop("name", "Test indicator"),
        "pattern_type": "stix",
        "pattern": pattern,
        "valid_from": "2024-01-01T00:00:00Z",
        **extra,
    }


@pytest.fixture
def ioc_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "bad-ips.csv", CSV)


def test_csv_exact_ip_with_summary_and_data(ioc_csv: Path) -> None:
    finding = LocalIoC([ioc_csv]).lookup("ip", "203.0.113.7")
    assert finding.found and finding.verdict == "malicious" and finding.score == 90
    assert finding.provider == "local"
    assert finding.summary == "listed in bad-ips.csv: Cobalt Strike C2 (source abuse.ch)"
    [entry] = finding.data
    assert entry["file"] == "bad-ips.csv" and entry["line"] == 3
    assert entry["labels"] == ["c2", "cobaltstrike"] and entry["source"] == "abuse.ch"


def test_not_listed_is_unknown(ioc_csv: Path) -> None:
    finding = LocalIoC([ioc_csv]).lookup("ip", "8.8.8.8")
    assert not finding.found and finding.verdict == "unknown" and finding.score is None


def test_cidr_matches_addresses_inside_only(ioc_csv: Path) -> None:
    local = LocalIoC([ioc_csv])
    inside = local.lookup("ip", "198.51.100.200")
    assert inside.found and inside.verdict == "suspicious" and inside.score == 40
    assert "as 198.51.100.0/24" in inside.summary
    assert not local.lookup("ip", "198.51.101.1").found


def test_values_are_normalised_on_both_sides(ioc_csv: Path) -> None:
    local = LocalIoC([ioc_csv])
    assert local.lookup("ip", "2001:db8::1").verdict == "suspicious"  # listed expanded, upper
    assert local.lookup("ip", "::ffff:203.0.113.7").found  # IPv4-mapped
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b856"
    assert local.lookup("hash", sha.upper()).found
    assert local.lookup("hash", "0123456789abcdef0123456789abcdef").found
    assert local.lookup("domain", "EVIL.example").found  # trailing dot and case
    assert local.lookup("url", "http://phish.example/Login?x=1").found
    assert not local.lookup("url", "http://phish.example/login?x=1").found  # path keeps case


def test_wildcard_domain_matches_subdomains_not_the_apex(ioc_csv: Path) -> None:
    local = LocalIoC([ioc_csv])
    sub = local.lookup("domain", "a.b.bad.example")
    assert sub.found and sub.score == 70 and "as *.bad.example" in sub.summary
    assert not local.lookup("domain", "bad.example").found
    assert not local.lookup("domain", "notbad.example").found
    assert not local.lookup("domain", "sub.evil.example").found  # exact entries stay exact


def test_clean_entry_and_worst_verdict_across_files(tmp_path: Path, ioc_csv: Path) -> None:
    assert LocalIoC([ioc_csv]).lookup("ip", "192.0.2.10").verdict == "clean"
    other = write(tmp_path / "more.csv", "type,value,score\nip,192.0.2.10,55\n")
    finding = LocalIoC([ioc_csv, other]).lookup("ip", "192.0.2.10")
    assert finding.verdict == "malicious" and finding.score == 55
    assert [e["file"] for e in finding.data] == ["more.csv", "bad-ips.csv"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("ip,999.1.1.1", "not an IP address"),
        ("md5,abcd", "not MD5 hash"),
        ("ipv4,2001:db8::1", "not an IPV4 address"),
        ("email,a@b.example", "unknown type 'email'"),
        ("ip,1.2.3.4,evil", "verdict must be"),
        ("ip,1.2.3.4,,101", "score must be"),
        ("url,ftp://x.example/", "not an absolute http(s) URL"),
        ("ip,1.2.3.4,,,,,,extra", "8 cells"),
    ],
)
def test_broken_csv_names_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, row: str, reason: str
) -> None:
    path = write(tmp_path / "l.csv", f"type,value,verdict,score,description,source,tags\n{row}\n")
    with caplog.at_level(logging.WARNING, "casefold.connectors.local_ioc"):
        local = LocalIoC([path])
    [record] = caplog.records
    assert f"{path}:2:" in record.getMessage() and reason in record.getMessage()
    assert local.status()[0]["entries"] == 0 and "line 2" in local.status()[0]["error"]


def test_csv_header_is_required(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "l.csv", "kind,ioc\nip,1.2.3.4\n")
    with caplog.at_level(logging.WARNING, "casefold.connectors.local_ioc"):
        LocalIoC([path])
    assert "type and value" in caplog.text and f"{path}:1:" in caplog.text


def test_reload_when_the_file_changes(tmp_path: Path) -> None:
    clock = Clock()
    path = write(tmp_path / "l.csv", "type,value\nip,1.2.3.4\n")
    local = LocalIoC([path], check_interval=5, clock=clock)
    assert local.lookup("ip", "1.2.3.4").found
    write(path, "type,value\nip,5.6.7.8\n")
    touch_later(path)
    clock.now += 1  # within the interval: not checked yet
    assert local.lookup("ip", "1.2.3.4").found
    clock.now += 5
    assert not local.lookup("ip", "1.2.3.4").found
    assert local.lookup("ip", "5.6.7.8").found


def test_atomic_replace_is_noticed(tmp_path: Path) -> None:
    clock = Clock()
    path = write(tmp_path / "l.csv", "type,value\nip,1.2.3.4\n")
    local = LocalIoC([path], check_interval=1, clock=clock)
    new = write(tmp_path / "l.csv.tmp", "type,value\nip,5.6.7.9\n")
    os.replace(new, path)  # same size; a new inode
    clock.now += 2
    assert local.lookup("ip", "5.6.7.9").found


def test_broken_file_keeps_last_good_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = write(tmp_path / "l.csv", "type,value\nip,1.2.3.4\n")
    local = LocalIoC([path], check_interval=1, clock=clock)
    write(path, "type,value\nip,1.2.3.4\nip,not-an-ip\n")
    touch_later(path)
    with caplog.at_level(logging.WARNING, "casefold.connectors.local_ioc"):
        for _ in range(3):
            clock.now += 2
            assert local.lookup("ip", "1.2.3.4").found
    [record] = caplog.records
    assert f"{path}:3:" in record.getMessage() and "not-an-ip" in record.getMessage()
    assert "keeping the last good content (1 entries)" in record.getMessage()
    write(path, "type,value\nip,9.9.9.9\n")  # fixed: served again
    touch_later(path)
    clock.now += 2
    assert local.lookup("ip", "9.9.9.9").found and local.status()[0]["error"] is None


def test_empty_file_counts_as_broken(tmp_path: Path) -> None:
    clock = Clock()
    path = write(tmp_path / "l.csv", "type,value\nip,1.2.3.4\n")
    local = LocalIoC([path], check_interval=1, clock=clock)
    write(path, "")  # an editor's truncate-then-write, caught in the middle
    clock.now += 2
    assert local.lookup("ip", "1.2.3.4").found


def test_missing_file_is_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = tmp_path / "later.csv"
    with caplog.at_level(logging.WARNING, "casefold.connectors.local_ioc"):
        local = LocalIoC([path], check_interval=1, clock=clock)
        assert not local.lookup("ip", "1.2.3.4").found
        clock.now += 2
        local.lookup("ip", "1.2.3.4")
    assert len(caplog.records) == 1 and "missing" in caplog.text
    write(path, "type,value\nip,1.2.3.4\n")
    clock.now += 2
    assert local.lookup("ip", "1.2.3.4").found
    path.unlink()
    clock.now += 2
    assert not local.lookup("ip", "1.2.3.4").found


def test_unknown_extension_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "list.txt", "1.2.3.4\n")
    with caplog.at_level(logging.WARNING, "casefold.connectors.local_ioc"):
        local = LocalIoC([path])
    assert "unknown file type" in caplog.text and local.status()[0]["entries"] == 0


# --- STIX ---------------------------------------------------------------------------------


def test_stix_indicator_with_identity_source(tmp_path: Path) -> None:
    path = write(
        tmp_path / "feed.json",
        bundle(
            {"type": "identity", "id": "identity--1", "name": "ThreatFox Abuse.ch"},
            indicator(
                "[ipv4-addr:value = '116.163.24.195']",
                "indicator--4c14",
                name="Cobalt Strike",
                created_by_ref="identity--1",
                labels=["malicious-activity"],
                indicator_types=["malicious-activity"],
                x_opencti_score=50,
                valid_until="2999-09-29T12:17:03.000Z",
            ),
        ),
    )
    finding = LocalIoC([path]).lookup("ip", "116.163.24.195")
    assert finding.found and finding.verdict == "malicious" and finding.score == 50
    assert finding.summary == "listed in feed.json: Cobalt Strike (source ThreatFox Abuse.ch)"
    [entry] = finding.data
    assert entry["id"] == "indicator--4c14" and entry["labels"] == ["malicious-activity"]
    assert entry["pattern"] == "[ipv4-addr:value = '116.163.24.195']"


def test_stix_or_patterns_hashes_and_cidr(tmp_path: Path) -> None:
    sha256 = "A" * 64
    path = write(
        tmp_path / "feed.json",
        bundle(
            indicator(
                "[domain-name:value = 'cdn.bootcss.com' OR domain-name:value = 'bootcss.com']",
                "indicator--a",
            ),
            indicator(
                f"[file:hashes.'SHA-256' = '{sha256}'] OR [file:hashes.MD5 = '{'b' * 32}']",
                "indicator--b",
            ),
            indicator("[file:hashes.'SHA-1' = '" + "c" * 40 + "']", "indicator--c"),
            indicator("[ipv4-addr:value = '10.20.0.0/16']", "indicator--d"),
            indicator("[ipv6-addr:value ISSUBSET '2001:db8:1::/48']", "indicator--e"),
            indicator("[url:value = 'https://x.example/a' OR file:name = 'a.exe']", "indicator--f"),
            indicator("[hostname:value = 'Host.Example']", "indicator--g"),
        ),
    )
    local = LocalIoC([path])
    assert local.lookup("domain", "bootcss.com").found
    assert local.lookup("domain", "cdn.bootcss.com").found
    assert local.lookup("hash", sha256.lower()).data[0]["id"] == "indicator--b"
    assert local.lookup("hash", "b" * 32).found and local.lookup("hash", "c" * 40).found
    assert local.lookup("ip", "10.20.3.4").data[0]["id"] == "indicator--d"
    assert local.lookup("ip", "2001:db8:1::5").found and not local.lookup("ip", "2001:db8::5").found
    assert local.lookup("url", "https://x.example/a").found  # the file:name branch is dropped
    assert local.lookup("domain", "host.example").found


def test_stix_skips_revoked_expired_and_unsupported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path / "feed.json",
        bundle(
            indicator("[ipv4-addr:value = '1.1.1.1']", "indicator--revoked", revoked=True),
            indicator(
                "[ipv4-addr:value = '2.2.2.2']",
                "indicator--expired",
                valid_until="2001-01-01T00:00:00.000Z",
            ),
            indicator("[ipv4-addr:value = '3.3.3.3' AND ipv4-addr:value = '4.4.4.4']", "i--and"),
            indicator("[ipv4-addr:value = '5.5.5.5'] WITHIN 60 SECONDS", "indicator--within"),
            indicator("rule x { condition: true }", "indicator--yara", pattern_type="yara"),
            indicator("[ipv4-addr:value = '6.6.6.6']", "indicator--ok"),
        ),
    )
    with caplog.at_level(logging.DEBUG, "casefold.connectors.local_ioc"):
        local = LocalIoC([path])
    for address in ("1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"):
        assert not local.lookup("ip", address).found, address
    assert local.lookup("ip", "6.6.6.6").found
    assert "skipped 1 revoked, 1 expired, 3 unsupported" in caplog.text


def test_stix_indicator_expiring_later_stops_matching(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    path = write(
        tmp_path / "feed.json",
        bundle(indicator("[ipv4-addr:value = '7.7.7.7']", valid_until="2030-01-02T00:00:00Z")),
    )
    local = LocalIoC([path], now=lambda: now[0])
    assert local.lookup("ip", "7.7.7.7").found
    now[0] += timedelta(days=2)
    assert not local.lookup("ip", "7.7.7.7").found


def test_stix_verdict_from_indicator_types_and_bare_observables(tmp_path: Path) -> None:
    path = write(
        tmp_path / "feed.json",
        bundle(
            indicator("[ipv4-addr:value = '8.8.4.4']", indicator_types=["benign"]),
            indicator("[ipv4-addr:value = '9.9.9.10']", indicator_types=["anonymization"]),
            {"type": "ipv4-addr", "id": "ipv4-addr--1", "value": "45.0.0.0/8"},
            {"type": "domain-name", "id": "domain-name--1", "value": "Obs.Example"},
            {"type": "url", "id": "url--1", "value": "http://obs.example"},
            {"type": "file", "id": "file--1", "hashes": {"MD5": "D" * 32, "SSDEEP": "3:x"}},
            {"type": "email-addr", "id": "email-addr--1", "value": "a@b.example"},
        ),
    )
    local = LocalIoC([path])
    assert local.lookup("ip", "8.8.4.4").verdict == "clean"
    assert local.lookup("ip", "9.9.9.10").verdict == "suspicious"
    for kind, value in [
        ("ip", "45.1.2.3"),
        ("domain", "obs.example"),
        ("url", "http://obs.example/"),
        ("hash", "d" * 32),
    ]:
        finding = local.lookup(kind, value)
        assert finding.found and finding.verdict == "suspicious", value


@pytest.mark.parametrize(
    ("text", "where"),
    [('{"type": "bundle",\n "objects": [,]}', ":2:"), ('{"type": "report"}', ":1:")],
)
def test_broken_stix_keeps_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, where: str
) -> None:
    clock = Clock()
    path = write(tmp_path / "feed.json", bundle(indicator("[ipv4-addr:value = '6.6.6.6']")))
    local = LocalIoC([path], check_interval=1, clock=clock)
    write(path, text)
    touch_later(path)
    clock.now += 2
    with caplog.at_level(logging.WARNING, "casefold.connectors.local_ioc"):
        assert local.lookup("ip", "6.6.6.6").found
    assert f"{path}{where}" in caplog.text


def test_pattern_parser_edges() -> None:
    assert pattern_values("[ipv4-addr:value IN ('1.1.1.1', '2.2.2.2')]") == [
        ("ip", "1.1.1.1"),
        ("ip", "2.2.2.2"),
    ]
    assert pattern_values("([domain-name:value = 'a.example'] OR [x:y = 1])") == [
        ("domain", "a.example")
    ]
    assert pattern_values(r"[url:value = 'http://q.example/it\'s']") == [
        ("url", "http://q.example/it's")
    ]
    assert pattern_values("[ipv4-addr:value = '1.1.1.1'") is None
    assert pattern_values("[ipv4-addr:value NOT = '1.1.1.1']") is None
    assert pattern_values("[file:name = 'a.exe']") is None


def test_invalid_lookup_value_and_kind(ioc_csv: Path) -> None:
    local = LocalIoC([ioc_csv])
    assert not local.lookup("ip", "not-an-ip").found
    with pytest.raises(ValueError):
        local.lookup("email", "a@b.example")
