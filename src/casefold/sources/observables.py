"""Pure helpers that turn raw alert values into `Observable`s.

Stdlib only, no I/O. Every helper takes whatever it is given (alert payloads are untrusted and
JSON-decoded values arrive as strings, numbers or worse) and returns None / an empty result
rather than raising, so source parsers can call them without guarding each field.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from casefold.sources.model import Observable

# Hex length of each hash algorithm we accept; imphash is an MD5 of the import table.
HASH_LENGTHS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "imphash": 32}

# Hashes of zero-byte content. Every empty file has them, so as observables they only produce
# noise (and false "known file" matches in threat intel); see external-apis.md §1.2.
EMPTY_FILE_HASHES: frozenset[str] = frozenset(
    {
        "d41d8cd98f00b204e9800998ecf8427e",  # md5
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # sha1
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256
    }
)

# Sysmon `Hashes=` algorithm names → our `kind`. Anything else (e.g. a future SHA384) is skipped.
_SYSMON_HASH_KINDS: dict[str, str] = {
    "MD5": "md5",
    "SHA1": "sha1",
    "SHA256": "sha256",
    "IMPHASH": "imphash",
}

_HEX_RE = re.compile(r"[0-9a-fA-F]+")
# Loose DNS name check: producers send IDN punycode, underscores (_ldap._tcp…) and odd casing,
# so only reject what can never be a name: whitespace, path/URL/IP-literal punctuation.
_NAME_RE = re.compile(r"[^\s/\\@:;,\"'<>()\[\]{}|]{1,253}")

# Hostnames that say nothing about which machine is meant.
_NON_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "-", "(none)", "unknown"})


class IpInfo(NamedTuple):
    """A validated IP: `value` normalised (IPv4-mapped IPv6 → IPv4, IPv6 compressed)."""

    value: str
    kind: str  # "ipv4" | "ipv6"
    public: bool  # ipaddress `is_global`: False for private, loopback, documentation, CGNAT…


def classify_ip(value: Any) -> IpInfo | None:
    """Validate and normalise an IP string; None when `value` is not an IP (e.g. "-", "")."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:  # why: nothing longer is an IP, and it bounds the work
        return None
    return _classify_text(text)


# Alerts repeat the same few addresses (an attacker, a server) thousands of times, and parsing
# with ipaddress costs ~20 µs; the answer is immutable, so it is cached.
@functools.lru_cache(maxsize=16_384)
def _classify_text(text: str) -> IpInfo | None:
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # why: Sysmon/Windows report IPv4 peers as ::ffff:a.b.c.d; TI and other alerts use a.b.c.d
        ip = ip.ipv4_mapped
    kind = "ipv4" if ip.version == 4 else "ipv6"
    # str() of an IPv6Address is already the compressed form (RFC 5952), lower-case.
    return IpInfo(str(ip), kind, bool(ip.is_global))


def normalize_hash(value: Any, kind: str | None = None) -> str | None:
    """Lower-cased hex hash, or None when not hex or the length does not fit `kind`.

    With `kind` None, any length in HASH_LENGTHS is accepted (use `hash_kind` to name it).
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _HEX_RE.fullmatch(text):
        return None
    if kind is None:
        if len(text) not in HASH_LENGTHS.values():
            return None
    elif HASH_LENGTHS.get(kind) != len(text):
        return None
    return text.lower()


def hash_kind(value: str) -> str | None:
    """Best guess of the algorithm from a hex hash's length (32 → "md5": imphash looks the same)."""
    normalised = normalize_hash(value)
    if normalised is None:
        return None
    return {32: "md5", 40: "sha1", 64: "sha256"}[len(normalised)]


def is_empty_file_hash(value: str) -> bool:
    return value.strip().lower() in EMPTY_FILE_HASHES


def parse_sysmon_hashes(value: Any) -> list[tuple[str, str]]:
    """Parse Sysmon's `Hashes` string ("SHA1=…,MD5=…,SHA256=…,IMPHASH=…", any subset, any case).

    Returns (kind, lower-case hex) pairs in input order; malformed or unknown parts are skipped.
    Empty-file hashes are returned too: filtering them is the `ObservableSet`'s job.
    """
    if not isinstance(value, str):
        return []
    result: list[tuple[str, str]] = []
    for part in value.split(","):
        name, sep, digest = part.partition("=")
        if not sep:
            continue
        kind = _SYSMON_HASH_KINDS.get(name.strip().upper())
        if kind is None:
            continue
        normalised = normalize_hash(digest, kind)
        if normalised is not None:
            result.append((kind, normalised))
    return result


def parse_query_results(value: Any) -> list[IpInfo]:
    """Parse Sysmon event 22 `QueryResults` into IPs, in order, without duplicates.

    Example: "type:  5 youtube-ui.l.google.com;::ffff:142.250.74.174;::1;". Records written as
    "type: N name" (CNAME and friends) are names, not addresses, and are dropped; tokens that are
    not IPs are skipped one by one (unlike wazuh-opencti, which drops the whole list).
    """
    if not isinstance(value, str):
        return []
    result: list[IpInfo] = []
    seen: set[str] = set()
    for token in value.split(";"):
        token = token.strip()
        if not token or token.lower().startswith("type:"):
            continue
        info = classify_ip(token)
        if info is not None and info.value not in seen:
            seen.add(info.value)
            result.append(info)
    return result


def undouble_backslashes(value: str) -> str:
    """Undo Wazuh's eventchannel escaping: two literal backslashes become one."""
    return value.replace("\\\\", "\\")


def normalize_domain(value: Any) -> str | None:
    """Lower-case DNS name without the trailing root dot; None for non-names and IP literals."""
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip(".").lower()
    if len(text) > 253:  # why: no DNS name is longer, and it keeps huge strings out of the cache
        return None
    return _domain_text(text)


@functools.lru_cache(maxsize=16_384)
def _domain_text(text: str) -> str | None:
    if not _NAME_RE.fullmatch(text) or text.startswith(".") or ".." in text:
        return None
    if classify_ip(text) is not None:
        return None
    return text


def normalize_hostname(value: Any) -> str | None:
    """Like `normalize_domain`, but also rejects placeholders such as "localhost" and "-"."""
    text = normalize_domain(value)
    if text is None or text in _NON_HOSTNAMES:
        return None
    return text


def normalize_url(value: Any) -> str | None:
    """The URL stripped of surrounding space, when it is absolute http(s) with a host."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text.lower().startswith(("http://", "https://")) or any(c.isspace() for c in text):
        return None
    try:
        host = urlsplit(text).hostname
    except ValueError:  # why: urlsplit raises on malformed IPv6 brackets ("http://[::1")
        return None
    return text if host else None


# What a case keeps of an observable's value (case_observables.value). A longer one (a user name or
# URL some log line made up) is no lookup anyone can use, and PostgreSQL would refuse it, failing
# every fold of its alert.
MAX_VALUE_LEN = 2048


class ObservableSet:
    """Ordered set of observables keyed by (type, value); the first field that reported a value
    wins, so the most specific field should be added first.

    Empty-file hashes are dropped here so every source gets the same noise filter.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Observable] = {}

    def add(
        self,
        type_: str,
        value: str,
        field: str,
        *,
        kind: str | None = None,
        public: bool | None = None,
    ) -> bool:
        """Add one observable; returns False when it was a duplicate or filtered out."""
        if not value or len(value) > MAX_VALUE_LEN:
            return False
        if type_ == "hash" and value in EMPTY_FILE_HASHES:
            return False
        key = (type_, value)
        if key in self._items:
            return False
        self._items[key] = Observable(
            type=type_, value=value, field=field, kind=kind, public=public
        )
        return True

    def add_ip(self, value: Any, field: str) -> bool:
        """Validate, normalise and add an IP; non-IPs ("-", "", "<client IP>") are skipped."""
        info = classify_ip(value)
        if info is None:
            return False
        return self.add("ip", info.value, field, kind=info.kind, public=info.public)

    def add_hash(self, value: Any, field: str, kind: str) -> bool:
        """Add a hash of a known algorithm; values of the wrong length or not hex are skipped."""
        normalised = normalize_hash(value, kind)
        if normalised is None:
            return False
        return self.add("hash", normalised, field, kind=kind)

    def __iter__(self) -> Iterator[Observable]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def to_list(self) -> list[Observable]:
        return list(self._items.values())
