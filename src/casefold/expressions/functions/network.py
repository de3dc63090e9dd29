"""FN catalogue, part 4: IP addresses and IOC extraction from (untrusted) text.

Extractors run fixed patterns with the ``regex`` module under the budget's
regex timeout, cap the number of results, de-duplicate in first-seen order,
and validate candidates with :mod:`ipaddress` where that applies. With
``include_defanged=True`` they first re-fang ``1.2.3[.]4`` / ``hxxp://`` forms.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import regex

from ..budget import EvalState
from ..errors import BudgetExceededError, EvaluationError
from ._util import regex_call, regex_pattern
from .registry import register

_MAX_MATCHES = 10_000


def _ip(x: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(x.strip())
    except ValueError:
        raise EvaluationError(f"{x!r:.60} is not an IP address") from None


def _net(x: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(x.strip(), strict=False)
    except ValueError:
        raise EvaluationError(f"{x!r:.60} is not a network") from None


@register(category="network")
def ipv4_in_subnet(ip: str, subnet: str) -> bool:
    """True if the IPv4 address is inside the subnet (CIDR)."""
    a, n = _ip(ip), _net(subnet)
    return a.version == 4 and n.version == 4 and a in n


@register(category="network")
def ipv6_in_subnet(ip: str, subnet: str) -> bool:
    """True if the IPv6 address is inside the subnet (CIDR)."""
    a, n = _ip(ip), _net(subnet)
    return a.version == 6 and n.version == 6 and a in n


@register(category="network")
def ipv4_is_public(ip: str) -> bool:
    """True for globally routable IPv4 addresses."""
    a = _ip(ip)
    return a.version == 4 and a.is_global


@register(category="network")
def ipv6_is_public(ip: str) -> bool:
    """True for globally routable IPv6 addresses."""
    a = _ip(ip)
    return a.version == 6 and a.is_global


@register(category="network")
def check_ip_version(ip: str) -> int:
    """4 or 6."""
    return _ip(ip).version


_IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]*\d)"
_IPV6 = r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])"
_DOMAIN = r"\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
_URL = r"\bhttps?://[^\s<>\"'`]{1,2000}"
_EMAIL = r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
_CVE = r"\bCVE-\d{4}-\d{4,7}\b"


def _hex(n: int) -> str:
    return rf"\b[A-Fa-f0-9]{{{n}}}\b"


def _refang(text: str) -> str:
    return (
        text.replace("[.]", ".")
        .replace("(.)", ".")
        .replace("{.}", ".")
        .replace("[dot]", ".")
        .replace("[:]", ":")
        .replace("[@]", "@")
        .replace("hxxp", "http")
        .replace("hXXp", "http")
    )


def _findall(
    st: EvalState, pattern: str, text: Any, include_defanged: bool, flags: int = 0
) -> list:
    if text is None:
        return []
    if not isinstance(text, str):
        raise EvaluationError("IOC extraction expects text")
    if include_defanged:
        text = _refang(text)
    compiled = regex_pattern(pattern, flags)
    out: list[str] = []
    seen: set[str] = set()
    try:
        for m in regex_call(st, compiled.finditer, text):
            value = m.group(0)
            if value not in seen:
                seen.add(value)
                out.append(value)
                if len(out) >= _MAX_MATCHES:
                    break
    except TimeoutError:  # finditer is lazy: the timeout fires while iterating
        raise BudgetExceededError(
            f"IOC extraction took longer than {st.budget.regex_timeout:g}s"
        ) from None
    st.charge(len(out))
    return out


@register(category="ioc", state=True)
def extract_ipv4(st: EvalState, text: str | None, include_defanged: bool = False) -> list:
    """IPv4 addresses found in text."""
    return _findall(st, _IPV4, text, include_defanged)


@register(category="ioc", state=True)
def extract_ipv6(st: EvalState, text: str | None, include_defanged: bool = False) -> list:
    """IPv6 addresses found in text (validated)."""
    out = []
    for c in _findall(st, _IPV6, text, include_defanged):
        try:
            if ipaddress.ip_address(c).version == 6:
                out.append(c)
        except ValueError:
            continue
    return out


@register(category="ioc", state=True)
def extract_ip(st: EvalState, text: str | None, include_defanged: bool = False) -> list:
    """IPv4 and IPv6 addresses found in text."""
    return extract_ipv4(st, text, include_defanged) + extract_ipv6(st, text, include_defanged)


@register(category="ioc", state=True)
def extract_domains(st: EvalState, text: str | None, include_defanged: bool = False) -> list:
    """Domain names found in text (e-mail domains and URL hosts included)."""
    return [
        d for d in _findall(st, _DOMAIN, text, include_defanged) if not d.replace(".", "").isdigit()
    ]


@register(category="ioc", state=True)
def extract_urls(st: EvalState, text: str | None, include_defanged: bool = False) -> list:
    """http(s) URLs found in text."""
    return [u.rstrip(".,;:)]}") for u in _findall(st, _URL, text, include_defanged)]


@register(category="ioc", state=True)
def extract_emails(st: EvalState, text: str | None, normalize: bool = False) -> list:
    """E-mail addresses found in text (``normalize`` lower-cases and drops ``+tags``)."""
    found = _findall(st, _EMAIL, text, False)
    if not normalize:
        return found
    return list(dict.fromkeys(normalize_email(e) for e in found))


@register(category="ioc")
def normalize_email(x: str) -> str:
    """Lower-case and drop a ``+tag`` from the local part."""
    local, _, domain = x.strip().lower().partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


@register(category="ioc", state=True)
def extract_md5(st: EvalState, text: str | None) -> list:
    """MD5-looking hex strings."""
    return _findall(st, _hex(32), text, False)


@register(category="ioc", state=True)
def extract_sha1(st: EvalState, text: str | None) -> list:
    """SHA-1-looking hex strings."""
    return _findall(st, _hex(40), text, False)


@register(category="ioc", state=True)
def extract_sha256(st: EvalState, text: str | None) -> list:
    """SHA-256-looking hex strings."""
    return _findall(st, _hex(64), text, False)


@register(category="ioc", state=True)
def extract_sha512(st: EvalState, text: str | None) -> list:
    """SHA-512-looking hex strings."""
    return _findall(st, _hex(128), text, False)


@register(category="ioc", state=True)
def extract_cves(st: EvalState, text: str | None) -> list:
    """CVE identifiers (upper-cased)."""
    return list(dict.fromkeys(c.upper() for c in _findall(st, _CVE, text, False, regex.IGNORECASE)))
