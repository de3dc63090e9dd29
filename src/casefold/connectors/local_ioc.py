"""Local IoC lists: CSV files and STIX 2.1 bundles kept on the Casefold host.

Files are read into memory and looked up with dict hits (networks and `*.domain` wildcards are
the only scans, and lists hold few of them). A file is re-read when its mtime, size or inode
changes, checked at most every `check_interval` seconds when a lookup comes in, so an operator
can edit a list without a restart. A file that does not parse keeps serving its last good
content: a half-written or mistyped list must not silently empty the IoC set.

CSV (our own format, so it is strict: a bad row rejects the whole file, naming its line):
    type,value,verdict,score,description,source,tags
    ip,203.0.113.7,malicious,90,Cobalt Strike C2,abuse.ch,c2;cobaltstrike
    cidr,198.51.100.0/24,suspicious,,Bulletproof hoster,,
    domain,*.evil.example,,,,,
Only `type` and `value` are required; the verdict defaults to malicious. Lines starting with
`#` are comments. `*.example.com` matches subdomains of example.com, not example.com itself.

STIX 2.1 bundles (written by others, so lenient: what cannot be matched is skipped and counted):
indicators with simple `stix` patterns (comparisons joined by OR, `=`, `IN` and `ISSUBSET`) on
ipv4-addr, ipv6-addr, domain-name, hostname, url and file hashes; revoked and expired indicators
are left out. Bare observables (ipv4-addr, ipv6-addr, domain-name, url, file) count as suspicious.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from casefold.connectors.finding import VERDICT_RANK, Finding
from casefold.sources.observables import normalize_domain, normalize_url

log = logging.getLogger(__name__)

NAME = "local"
CSV_VERDICTS = ("malicious", "suspicious", "clean")
# CSV `type` → the kind of lookup it answers.
_CSV_TYPES = {
    "ip": "ip",
    "ipv4": "ip",
    "ipv6": "ip",
    "cidr": "ip",
    "hash": "hash",
    "md5": "hash",
    "sha1": "hash",
    "sha256": "hash",
    "domain": "domain",
    "url": "url",
}
_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX = re.compile(r"[0-9a-f]+")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_MISSING = (-1, -1, -1)  # signature of a file that is not there
_UNREADABLE = (-2, -2, -2)  # …and of one that cannot be opened: warned about once

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class IoCEntry:
    """One listed value with what its file says about it."""

    kind: str  # ip | hash | domain | url
    value: str  # as listed, normalised: address, network, hash, domain, "*.suffix" or URL
    verdict: str
    score: int | None
    file: str  # the file's name
    line: int | None = None  # CSV line number
    indicator_id: str | None = None  # STIX object id
    name: str = ""
    description: str = ""
    source: str = ""
    labels: tuple[str, ...] = ()
    pattern: str | None = None
    valid_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "id": self.indicator_id,
            "kind": self.kind,
            "value": self.value,
            "verdict": self.verdict,
            "score": self.score,
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "labels": list(self.labels),
            "pattern": self.pattern,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }
        return {k: v for k, v in doc.items() if v not in (None, "", [])}

    def label(self) -> str:
        text = self.name or self.description
        return text if len(text) <= 120 else text[:120] + "…"


@dataclass
class _Index:
    exact: dict[tuple[str, str], list[IoCEntry]] = field(default_factory=dict)
    networks: list[tuple[Network, IoCEntry]] = field(default_factory=list)
    wildcards: dict[str, list[IoCEntry]] = field(default_factory=dict)  # suffix → entries
    size: int = 0

    def add(self, entry: IoCEntry, mode: str, network: Network | None = None) -> None:
        self.size += 1
        if mode == "network":
            assert network is not None
            self.networks.append((network, entry))
        elif mode == "wildcard":
            self.wildcards.setdefault(entry.value[2:], []).append(entry)
        else:
            self.exact.setdefault((entry.kind, entry.value), []).append(entry)

    def match(self, kind: str, key: str) -> list[IoCEntry]:
        found = list(self.exact.get((kind, key), ()))
        if kind == "ip" and self.networks:
            address = ipaddress.ip_address(key)
            found += [
                e for net, e in self.networks if net.version == address.version and address in net
            ]
        elif kind == "domain" and self.wildcards:
            labels = key.split(".")
            for i in range(1, len(labels)):
                found += self.wildcards.get(".".join(labels[i:]), ())
        return found


class _Broken(Exception):
    """A file that cannot be used; `line` points at the culprit when known."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass
class _FileState:
    path: Path
    signature: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) last examined
    index: _Index = field(default_factory=_Index)
    error: str | None = None
    loaded_at: datetime | None = None


class LocalIoC:
    """The `local` threat-intel provider: lookups against the configured IoC files."""

    name = NAME
    kinds = frozenset({"ip", "hash", "domain", "url"})

    def __init__(
        self,
        paths: list[Path],
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.check_interval = check_interval
        self._clock = clock
        self._now = now  # wall time, for STIX valid_until
        self._files = [_FileState(Path(p)) for p in paths]
        self._lock = threading.Lock()
        self._checked = clock()
        with self._lock:
            for state in self._files:
                self._check(state)

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """Local lists are read, never asked over the network."""
        return "READ", ", ".join(str(f.path) for f in self._files)

    def lookup(self, kind: str, value: str) -> Finding:
        if kind not in self.kinds:
            raise ValueError(f"the local IoC lists do not hold {kind!r} values")
        self._maybe_reload()
        key = lookup_key(kind, value)
        if key is None:
            return Finding(
                NAME, kind, str(value), False, "unknown", None, f"not a valid {kind}", []
            )
        now = self._now()
        matches = [
            entry
            for state in self._files
            for entry in state.index.match(kind, key)
            if entry.valid_until is None or entry.valid_until > now
        ]
        if not matches:
            return Finding(
                NAME, kind, key, False, "unknown", None, "not in the local IoC lists", []
            )
        matches.sort(key=lambda e: (VERDICT_RANK[e.verdict], -(e.score or 0)))
        verdict = matches[0].verdict
        scores = [e.score for e in matches if e.verdict == verdict and e.score is not None]
        return Finding(
            NAME,
            kind,
            key,
            True,
            verdict,
            max(scores) if scores else None,
            _summary(key, matches),
            [e.to_dict() for e in matches],
        )

    def reload(self) -> None:
        """Check every file now, whatever the interval."""
        with self._lock:
            self._checked = self._clock()
            for state in self._files:
                self._check(state)

    def status(self) -> list[dict[str, Any]]:
        """Per file: path, entries served, the last load error (None when the file is fine)."""
        return [
            {
                "path": str(s.path),
                "entries": s.index.size,
                "error": s.error,
                "loaded_at": s.loaded_at.isoformat() if s.loaded_at else None,
            }
            for s in self._files
        ]

    def _maybe_reload(self) -> None:
        if self._clock() - self._checked < self.check_interval:
            return
        # Non-blocking: one thread re-reads, the others keep answering from the current index.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = self._clock()
            for state in self._files:
                self._check(state)
        finally:
            self._lock.release()

    def _check(self, state: _FileState) -> None:
        path = state.path
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            if state.signature != _MISSING:
                log.warning("local IoC file %s is missing: it contributes no entries", path)
            state.signature, state.index, state.error = _MISSING, _Index(), "missing"
            return
        except OSError as exc:
            if state.signature != _UNREADABLE:
                self._broken(state, None, f"cannot open: {exc.strerror or exc}")
            state.signature = _UNREADABLE
            return
        with handle:
            st = os.fstat(handle.fileno())
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if signature == state.signature:
                return
            state.signature = signature
            try:
                raw = handle.read()
            except OSError as exc:
                self._broken(state, None, f"cannot read: {exc.strerror or exc}")
                return
        try:
            index = parse_file(path, raw, self._now())
        except _Broken as exc:
            self._broken(state, exc.line, exc.reason)
            return
        state.index, state.error, state.loaded_at = index, None, self._now()
        log.info("local IoC file %s: %d entries loaded", path, index.size)

    def _broken(self, state: _FileState, line: int | None, reason: str) -> None:
        state.error = f"line {line}: {reason}" if line else reason
        log.warning(
            "local IoC file %s:%s: %s; keeping the last good content (%d entries)",
            state.path,
            line or 1,
            reason,
            state.index.size,
        )


def _summary(key: str, matches: list[IoCEntry]) -> str:
    parts = []
    for entry in matches[:3]:
        text = f"listed in {entry.file}"
        if entry.value != key:
            text += f" as {entry.value}"
        if entry.label():
            text += f": {entry.label()}"
        if entry.source:
            text += f" (source {entry.source})"
        parts.append(text)
    if len(matches) > 3:
        parts.append(f"{len(matches) - 3} more")
    return "; ".join(parts)


# --- values ------------------------------------------------------------------------------------


def canonical_url(value: str) -> str | None:
    """The http(s) URL with scheme and host lower-cased and an empty path written "/"."""
    text = normalize_url(value)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    userinfo, at, host = parts.netloc.rpartition("@")  # why: only the host is case-blind
    netloc = f"{userinfo}{at}{host.lower()}"
    return urlunsplit(
        (parts.scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment)
    )


def normal_ip(text: str) -> str | None:
    """The address in its canonical form (IPv4-mapped IPv6 as IPv4, IPv6 compressed)."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text  # why: the common case, and parsing dominates loading a big list
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def lookup_key(kind: str, value: Any) -> str | None:
    """`value` normalised the way listed values are, or None when it is not a `kind`."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if kind == "ip":
        return normal_ip(text.strip("[]"))
    if kind == "hash":
        lowered = text.lower()
        return lowered if _HEX.fullmatch(lowered) and len(lowered) in (32, 40, 64) else None
    if kind == "domain":
        return normalize_domain(text)
    if kind == "url":
        return canonical_url(text)
    return None


def _listed(kind: str, raw: str, algorithm: str | None = None) -> tuple[str, str, Network | None]:
    """(mode, normalised value, network) for a listed value; ValueError says what is wrong.

    `kind` is ip (an address or a network), hash (`algorithm` fixes the length), domain (exact
    or `*.suffix`) or url.
    """
    text = raw.strip()
    if kind == "ip":
        if "/" in text:
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{raw!r} is not an IP network") from None
            if network.num_addresses > 1:
                return "network", str(network), network
            text = str(network.network_address)  # a /32 or /128 is one address
        address = normal_ip(text)
        if address is None:
            raise ValueError(f"{raw!r} is not an IP address")
        return "exact", address, None
    if kind == "hash":
        lowered = text.lower()
        lengths = (_HASH_LENGTHS[algorithm],) if algorithm else tuple(_HASH_LENGTHS.values())
        if not _HEX.fullmatch(lowered) or len(lowered) not in lengths:
            what = algorithm.upper() if algorithm else "an MD5, SHA-1 or SHA-256"
            raise ValueError(f"{raw!r} is not {what} hash")
        return "exact", lowered, None
    if kind == "domain":
        wildcard = text.startswith("*.")
        domain = normalize_domain(text[2:] if wildcard else text)
        if domain is None or "*" in domain:
            raise ValueError(f"{raw!r} is not a domain name")
        return ("wildcard", f"*.{domain}", None) if wildcard else ("exact", domain, None)
    url = canonical_url(text)
    if url is None:
        raise ValueError(f"{raw!r} is not an absolute http(s) URL")
    return "exact", url, None


# --- files -------------------------------------------------------------------------------------


def parse_file(path: Path, raw: bytes, now: datetime) -> _Index:
    """The index of one file's content; raises _Broken when the file cannot be used."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise _Broken(None, "unknown file type: name it .csv (IoC list) or .json (STIX bundle)")
    try:
        text = raw.decode("utf-8-sig")  # why -sig: spreadsheets save CSV with a BOM
    except UnicodeDecodeError as exc:
        raise _Broken(raw[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    if not text.strip():
        # An empty file is more likely a list caught mid-write than a deliberately empty one.
        raise _Broken(1, "the file is empty")
    if suffix == ".csv":
        return _parse_csv(path.name, text)
    return _parse_stix(path.name, text, now)


def _parse_csv(name: str, text: str) -> _Index:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    index = _Index()
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in row]
                if "type" not in header or "value" not in header:
                    raise _Broken(line, "the header row must name the columns type and value")
                continue
            if len(row) > len(header):
                raise _Broken(line, f"{len(row)} cells but the header names {len(header)}")
            cells = {h: c.strip() for h, c in zip(header, row, strict=False)}
            entry, mode, network = _csv_entry(name, line, cells)
            index.add(entry, mode, network)
    except csv.Error as exc:
        raise _Broken(reader.line_num, f"bad CSV: {exc}") from None
    if header is None:
        raise _Broken(1, "no header row")
    return index


def _csv_entry(name: str, line: int, cells: dict[str, str]) -> tuple[IoCEntry, str, Network | None]:
    type_ = cells.get("type", "").lower()
    if type_ not in _CSV_TYPES:
        raise _Broken(line, f"unknown type {type_!r} (expected one of {', '.join(_CSV_TYPES)})")
    value = cells.get("value", "")
    if not value:
        raise _Broken(line, "no value")
    kind = _CSV_TYPES[type_]
    try:
        mode, listed, network = _listed(kind, value, type_ if type_ in _HASH_LENGTHS else None)
    except ValueError as exc:
        raise _Broken(line, str(exc)) from None
    if type_ in ("ipv4", "ipv6"):
        version = network.version if network else 6 if ":" in listed else 4
        if f"ipv{version}" != type_:
            raise _Broken(line, f"{value!r} is not an {type_.upper()} address")
    verdict = cells.get("verdict", "").lower() or "malicious"
    if verdict not in CSV_VERDICTS:
        raise _Broken(line, f"verdict must be malicious, suspicious or clean, not {verdict!r}")
    score_text = cells.get("score", "")
    score: int | None = None
    if score_text:
        try:
            score = int(score_text)
        except ValueError:
            score = -1
        if not 0 <= score <= 100:
            raise _Broken(line, f"score must be a whole number from 0 to 100, not {score_text!r}")
    tags = tuple(t.strip() for t in cells.get("tags", "").split(";") if t.strip())
    entry = IoCEntry(
        kind,
        listed,
        verdict,
        score,
        name,
        line=line,
        description=cells.get("description", ""),
        source=cells.get("source", ""),
        labels=tags,
    )
    return entry, mode, network


# --- STIX --------------------------------------------------------------------------------------

# One comparison: object type, property path, operator, then a string, a set of strings, or a
# bare literal (numbers, booleans). Anything the grammar allows beyond this stays unsupported.
_STRING = r"'(?:[^'\\]|\\.)*'"
_COMPARISON = (
    r"(?P<object>[a-z0-9][a-z0-9-]*):"
    r"(?P<path>[A-Za-z0-9_-]+(?:\.(?:'[^']*'|[A-Za-z0-9_-]+)|\[(?:\*|\d+)\])*)"
    r"\s*(?P<op>=|!=|<=|>=|<|>|IN|LIKE|MATCHES|ISSUBSET|ISSUPERSET)\s*"
    rf"(?P<value>{_STRING}|\(\s*{_STRING}(?:\s*,\s*{_STRING})*\s*\)|[htb]'[^']*'|[\w.+-]+)"
)
_TOKEN = re.compile(rf"\s*(?:(?P<cmp>{_COMPARISON})|(?P<punct>[\[\]()])|(?P<word>[A-Z]+)\b)")
_SHAPE = re.compile(r"\[c(?:\|c)*\](?:\|\[c(?:\|c)*\])*")  # observations and comparisons ORed
_HASH_NAMES = {
    "MD5": "md5",
    "SHA1": "sha1",
    "SHA-1": "sha1",
    "SHA256": "sha256",
    "SHA-256": "sha256",
}
_IP_OBJECTS = ("ipv4-addr", "ipv6-addr")
_DOMAIN_OBJECTS = ("domain-name", "hostname", "x-opencti-hostname")


def pattern_values(pattern: str) -> list[tuple[str, str]] | None:
    """(kind, value) pairs any of which makes a simple STIX pattern match; None if unsupported.

    Only OR joins comparisons and observations (grouping parentheses are then irrelevant and
    ignored); AND, FOLLOWEDBY, qualifiers and NOT are unsupported. An OR branch on something
    we cannot look up (`file:name`, `network-traffic:dst_port`) is dropped: the others still
    match on their own.
    """
    pos, shape, comparisons, depth = 0, [], [], 0
    text = pattern.strip()
    while pos < len(text):
        token = _TOKEN.match(text, pos)
        if token is None:
            return None
        pos = token.end()
        if token["cmp"]:
            shape.append("c")
            comparisons.append((token["object"], token["path"], token["op"], token["value"]))
        elif token["punct"] in ("(", ")"):
            depth += 1 if token["punct"] == "(" else -1
            if depth < 0:
                return None
        elif token["punct"]:
            shape.append(token["punct"])
        elif token["word"] == "OR":
            shape.append("|")
        else:
            return None
        pos = _skip_space(text, pos)
    if depth or not _SHAPE.fullmatch("".join(shape)):
        return None
    pairs: list[tuple[str, str]] = []
    for obj, path, op, literal in comparisons:
        pairs += _comparison_values(obj, path, op, literal)
    return pairs or None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _strings(literal: str) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", s[1:-1]) for s in re.findall(_STRING, literal)]


def _comparison_values(obj: str, path: str, op: str, literal: str) -> list[tuple[str, str]]:
    if not literal.startswith(("'", "(")):
        return []  # numbers, booleans, timestamps: not values we look up
    if obj in _IP_OBJECTS and path == "value" and op in ("=", "IN", "ISSUBSET"):
        return [("ip", v) for v in _strings(literal)]
    if obj in _DOMAIN_OBJECTS and path == "value" and op in ("=", "IN"):
        return [("domain", v) for v in _strings(literal)]
    if obj == "url" and path == "value" and op in ("=", "IN"):
        return [("url", v) for v in _strings(literal)]
    if obj == "file" and path.startswith("hashes.") and op in ("=", "IN"):
        algorithm = _HASH_NAMES.get(path[len("hashes.") :].strip("'").upper())
        if algorithm:
            return [(f"hash:{algorithm}", v) for v in _strings(literal)]
    return []


def _stix_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _indicator_verdict(types: Any) -> str:
    """STIX indicator_types → verdict; no types at all means the feed calls it malicious."""
    given = {str(t).lower() for t in types} if isinstance(types, list) else set()
    if given & {"malicious-activity", "compromised", "attribution"} or not given:
        return "malicious"
    if "benign" in given:
        return "clean"
    return "suspicious"  # anomalous-activity, anonymization, unknown


def _parse_stix(name: str, text: str, now: datetime) -> _Index:
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Broken(exc.lineno, f"not JSON: {exc.msg}") from None
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise _Broken(1, 'not a STIX 2.1 bundle (expected {"type": "bundle", "objects": [...]})')
    objects = bundle.get("objects")
    if not isinstance(objects, list):
        raise _Broken(1, "the bundle has no objects list")
    identities = {
        o.get("id"): str(o.get("name") or "")
        for o in objects
        if isinstance(o, dict) and o.get("type") == "identity"
    }
    index = _Index()
    skipped = {"revoked": 0, "expired": 0, "unsupported": 0}
    for obj in objects:
        if not isinstance(obj, dict):
            skipped["unsupported"] += 1
            continue
        if obj.get("type") == "indicator":
            outcome = _add_indicator(index, name, obj, identities, now)
            if outcome:
                skipped[outcome] += 1
        elif obj.get("type") in ("ipv4-addr", "ipv6-addr", "domain-name", "url", "file"):
            if not _add_observable(index, name, obj):
                skipped["unsupported"] += 1
    if any(skipped.values()):
        log.debug(
            "local IoC file %s: %d entries; skipped %d revoked, %d expired, %d unsupported",
            name,
            index.size,
            skipped["revoked"],
            skipped["expired"],
            skipped["unsupported"],
        )
    return index


def _add_indicator(
    index: _Index, name: str, obj: dict[str, Any], identities: dict[Any, str], now: datetime
) -> str | None:
    """Index an indicator's values; returns why it was skipped, or None."""
    if obj.get("revoked") is True:
        return "revoked"
    valid_until = _stix_time(obj.get("valid_until"))
    if valid_until is not None and valid_until <= now:
        return "expired"
    pattern = obj.get("pattern")
    if obj.get("pattern_type", "stix") != "stix" or not isinstance(pattern, str):
        return "unsupported"
    pairs = pattern_values(pattern)
    if pairs is None:
        return "unsupported"
    score = obj.get("x_opencti_score")
    labels = obj.get("labels")
    added = 0
    for kind, raw in pairs:
        kind, _, algorithm = kind.partition(":")
        try:
            mode, listed, network = _listed(kind, raw, algorithm or None)
        except ValueError:
            continue
        entry = IoCEntry(
            kind,
            listed,
            _indicator_verdict(obj.get("indicator_types")),
            score if isinstance(score, int) and 0 <= score <= 100 else None,
            name,
            indicator_id=str(obj.get("id") or ""),
            name=str(obj.get("name") or ""),
            description=str(obj.get("description") or ""),
            source=identities.get(obj.get("created_by_ref"), ""),
            labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
            pattern=pattern,
            valid_until=valid_until,
        )
        index.add(entry, mode, network)
        added += 1
    return None if added else "unsupported"


def _add_observable(index: _Index, name: str, obj: dict[str, Any]) -> bool:
    type_ = str(obj["type"])
    pairs: Iterable[tuple[str, str | None, Any]]
    if type_ == "file":
        hashes = obj.get("hashes")
        if not isinstance(hashes, dict):
            return False
        pairs = [("hash", _HASH_NAMES.get(str(k).upper()), v) for k, v in hashes.items()]
        pairs = [p for p in pairs if p[1]]
    else:
        kind = {"domain-name": "domain", "url": "url"}.get(type_, "ip")
        pairs = [(kind, None, obj.get("value"))]
    added = 0
    for kind, algorithm, raw in pairs:
        if not isinstance(raw, str):
            continue
        try:
            mode, listed, network = _listed(kind, raw, algorithm)
        except ValueError:
            continue
        entry = IoCEntry(
            kind,
            listed,
            "suspicious",
            None,
            name,
            indicator_id=str(obj.get("id") or ""),
            description=f"STIX {type_} observable",
        )
        index.add(entry, mode, network)
        added += 1
    return added > 0
