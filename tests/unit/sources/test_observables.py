"""Unit tests for casefold.sources.observables (pure helpers)."""

from __future__ import annotations

import pytest

from casefold.sources.model import Observable
from casefold.sources.observables import (
    EMPTY_FILE_HASHES,
    IpInfo,
    ObservableSet,
    classify_ip,
    hash_kind,
    is_empty_file_hash,
    normalize_domain,
    normalize_hash,
    normalize_hostname,
    normalize_url,
    parse_query_results,
    parse_sysmon_hashes,
    undouble_backslashes,
)

SHA1 = "ED96EEAD6232E2A1591ECD5B0B3544F98F5E3DE1"
MD5 = "4B9E87D1547A4FC9E47D6A6D8DC5E381"
SHA256 = "0479327E7136FA14F69D231D1B38CF654421073C8A0166BF6690A3D2C0B14FFA"
IMPHASH = "72491100E121C09085313F2BAF04AD3A"


# --- IPs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8.8.8.8", IpInfo("8.8.8.8", "ipv4", True)),
        ("116.163.24.195", IpInfo("116.163.24.195", "ipv4", True)),
        (" 1.2.3.4 ", IpInfo("1.2.3.4", "ipv4", True)),
        ("10.10.10.10", IpInfo("10.10.10.10", "ipv4", False)),
        ("172.17.1.1", IpInfo("172.17.1.1", "ipv4", False)),
        ("192.168.0.223", IpInfo("192.168.0.223", "ipv4", False)),
        ("127.0.0.1", IpInfo("127.0.0.1", "ipv4", False)),
        ("::1", IpInfo("::1", "ipv6", False)),
        ("169.254.1.1", IpInfo("169.254.1.1", "ipv4", False)),
        ("100.64.0.1", IpInfo("100.64.0.1", "ipv4", False)),  # CGNAT
        # Documentation ranges are reserved, never worth sending to threat intel.
        ("192.0.2.10", IpInfo("192.0.2.10", "ipv4", False)),
        ("198.51.100.7", IpInfo("198.51.100.7", "ipv4", False)),
        ("203.0.113.5", IpInfo("203.0.113.5", "ipv4", False)),
        ("2001:db8::1", IpInfo("2001:db8::1", "ipv6", False)),
        ("fe80::1", IpInfo("fe80::1", "ipv6", False)),
    ],
)
def test_classify_ip(value: str, expected: IpInfo) -> None:
    assert classify_ip(value) == expected


def test_ipv6_is_compressed_and_lower_cased() -> None:
    assert classify_ip("2A00:1450:4010:0C0E:0000:0000:0000:0071") == IpInfo(
        "2a00:1450:4010:c0e::71", "ipv6", True
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("::ffff:142.250.74.174", IpInfo("142.250.74.174", "ipv4", True)),
        ("::FFFF:10.0.0.1", IpInfo("10.0.0.1", "ipv4", False)),
        ("0:0:0:0:0:ffff:8.8.4.4", IpInfo("8.8.4.4", "ipv4", True)),
        ("::ffff:203.0.113.9", IpInfo("203.0.113.9", "ipv4", False)),
    ],
)
def test_ipv4_mapped_ipv6_becomes_ipv4(value: str, expected: IpInfo) -> None:
    assert classify_ip(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "-", "  ", "null", "<client IP>", "any", "1.2.3", "256.1.1.1", "010.1.1.1", "1.2.3.4:80",
     "x" * 500, None, 66, 1.5, True, ["8.8.8.8"], {"ip": "8.8.8.8"}],
)  # fmt: skip
def test_classify_ip_rejects_non_ips(value: object) -> None:
    assert classify_ip(value) is None


# --- hashes ------------------------------------------------------------------------------------


def test_parse_sysmon_hashes_full_set_lower_cased_in_order() -> None:
    value = f"SHA1={SHA1},MD5={MD5},SHA256={SHA256},IMPHASH={IMPHASH}"
    assert parse_sysmon_hashes(value) == [
        ("sha1", SHA1.lower()),
        ("md5", MD5.lower()),
        ("sha256", SHA256.lower()),
        ("imphash", IMPHASH.lower()),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"SHA256={SHA256}", [("sha256", SHA256.lower())]),
        (f"md5={MD5.lower()}", [("md5", MD5.lower())]),
        (
            f"Sha1={SHA1} , ImpHash={IMPHASH}",
            [("sha1", SHA1.lower()), ("imphash", IMPHASH.lower())],
        ),
        # Wrong length for the declared algorithm, not hex, unknown algorithm, no "=": skipped.
        (f"MD5={SHA1},SHA256=zz{SHA256[2:]},SHA384={SHA256},{MD5}", []),
        (f"SHA256={SHA256},garbage,,=,MD5=", [("sha256", SHA256.lower())]),
        ("", []),
        ("-", []),
    ],
)
def test_parse_sysmon_hashes_subsets_and_junk(value: str, expected: list[tuple[str, str]]) -> None:
    assert parse_sysmon_hashes(value) == expected


@pytest.mark.parametrize("value", [None, 5, ["SHA256=" + SHA256], {"SHA256": SHA256}])
def test_parse_sysmon_hashes_wrong_type(value: object) -> None:
    assert parse_sysmon_hashes(value) == []


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (MD5, "md5", MD5.lower()),
        (SHA1, "sha1", SHA1.lower()),
        (SHA256, "sha256", SHA256.lower()),
        (IMPHASH, "imphash", IMPHASH.lower()),
        (f" {MD5} ", "md5", MD5.lower()),
        (MD5, "sha1", None),
        (SHA1, "sha256", None),
        (SHA256[:-1], "sha256", None),
        ("g" * 32, "md5", None),
        ("", "md5", None),
        (MD5, None, MD5.lower()),
        (SHA256, None, SHA256.lower()),
        ("a" * 48, None, None),
        (12345, "md5", None),
    ],
)
def test_normalize_hash(value: object, kind: str | None, expected: str | None) -> None:
    assert normalize_hash(value, kind) == expected


def test_hash_kind_by_length() -> None:
    assert hash_kind(MD5) == "md5"
    assert hash_kind(SHA1) == "sha1"
    assert hash_kind(SHA256) == "sha256"
    assert hash_kind("abc") is None


def test_empty_file_hashes() -> None:
    assert EMPTY_FILE_HASHES == {
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    assert is_empty_file_hash("D41D8CD98F00B204E9800998ECF8427E")
    assert not is_empty_file_hash(MD5)


# --- Sysmon 22 queryResults ----------------------------------------------------------------------


def test_parse_query_results_drops_type_records_and_maps_ipv4() -> None:
    value = "type:  5 youtube-ui.l.google.com;::ffff:142.250.74.174;::ffff:216.58.207.206;"
    assert parse_query_results(value) == [
        IpInfo("142.250.74.174", "ipv4", True),
        IpInfo("216.58.207.206", "ipv4", True),
    ]


def test_parse_query_results_ipv6_private_junk_and_duplicates() -> None:
    value = (
        "type: 5 cdn.bootcss.com.cdn.dnsv1.com.cn;2A00:1450:4010:0C0E:0000:0000:0000:0071;"
        "10.0.0.5; not-an-ip ;::ffff:116.163.24.195;116.163.24.195;;"
    )
    assert parse_query_results(value) == [
        IpInfo("2a00:1450:4010:c0e::71", "ipv6", True),
        IpInfo("10.0.0.5", "ipv4", False),
        IpInfo("116.163.24.195", "ipv4", True),
    ]


@pytest.mark.parametrize("value", ["", "-", ";;;", "type: 5 a.example;", None, 3, ["1.2.3.4"]])
def test_parse_query_results_nothing(value: object) -> None:
    assert parse_query_results(value) == []


# --- names, users, URLs ---------------------------------------------------------------------------


def test_undouble_backslashes() -> None:
    assert undouble_backslashes("MYORG\\\\jromero") == "MYORG\\jromero"
    assert undouble_backslashes("MYORG\\jromero") == "MYORG\\jromero"
    assert undouble_backslashes("C:\\\\Windows\\\\x.exe") == "C:\\Windows\\x.exe"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cdn.bootcss.com", "cdn.bootcss.com"),
        ("WWW.Example.COM.", "www.example.com"),
        ("_ldap._tcp.dc._msdcs.corp.local", "_ldap._tcp.dc._msdcs.corp.local"),
        ("wpad", "wpad"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("1.2.3.4", None),
        ("::1", None),
        ("a b.com", None),
        ("http://x.com/", None),
        ("a..b", None),
        ("", None),
        ("null", "null"),  # normalize_* do not know about placeholders; callers filter "null"
        (None, None),
        (7, None),
    ],
)
def test_normalize_domain(value: object, expected: str | None) -> None:
    assert normalize_domain(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DESKTOP-NCLALBR.MYORG.ORG", "desktop-nclalbr.myorg.org"),
        ("manager", "manager"),
        ("localhost", None),
        ("LOCALHOST", None),
        ("localhost.localdomain", None),
        ("-", None),
        ("10.0.0.1", None),
    ],
)
def test_normalize_hostname(value: str, expected: str | None) -> None:
    assert normalize_hostname(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://bad.example/x.sh", "http://bad.example/x.sh"),
        (" HTTPS://Bad.Example:8443/a?b=c ", "HTTPS://Bad.Example:8443/a?b=c"),
        ("http://[2001:db8::1]/x", "http://[2001:db8::1]/x"),
        ("/", None),
        ("/cgi-bin/test.cgi", None),
        ("bad.example/x.sh", None),
        ("httpd", None),
        ("http://", None),
        ("http:///path", None),
        ("http://[::1", None),
        ("http://a.example/x y", None),
        ("ftp://a.example/", None),
        (None, None),
    ],
)
def test_normalize_url(value: object, expected: str | None) -> None:
    assert normalize_url(value) == expected


# --- ObservableSet --------------------------------------------------------------------------------


def test_observable_set_keeps_first_field_and_order() -> None:
    found = ObservableSet()
    assert found.add_ip("8.8.8.8", "data.srcip")
    assert found.add("user", "paco", "data.srcuser")
    assert not found.add_ip("8.8.8.8", "data.dstip")
    assert not found.add_ip("::ffff:8.8.8.8", "data.win.eventdata.ipAddress")
    # Same value, different type: a distinct observable.
    assert found.add("hostname", "paco", "data.hostname")
    assert found.to_list() == [
        Observable("ip", "8.8.8.8", "data.srcip", kind="ipv4", public=True),
        Observable("user", "paco", "data.srcuser"),
        Observable("hostname", "paco", "data.hostname"),
    ]
    assert len(found) == 3
    assert ("ip", "8.8.8.8") in found
    assert list(found) == found.to_list()


def test_observable_set_filters_empty_file_hashes_and_junk() -> None:
    found = ObservableSet()
    for digest in EMPTY_FILE_HASHES:
        assert not found.add("hash", digest, "syscheck.x")
    assert not found.add_hash("D41D8CD98F00B204E9800998ECF8427E", "syscheck.md5_after", "md5")
    assert not found.add_hash("nothex", "syscheck.md5_after", "md5")
    assert not found.add_hash(MD5, "syscheck.sha1_after", "sha1")  # wrong length for sha1
    assert not found.add_ip("-", "data.srcip")
    assert not found.add("user", "", "data.srcuser")
    assert found.add_hash(MD5, "syscheck.md5_after", "md5")
    assert found.to_list() == [Observable("hash", MD5.lower(), "syscheck.md5_after", kind="md5")]
