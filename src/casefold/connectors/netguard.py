"""Outbound URL policy for playbooks: no SSRF into the private network.

A playbook's `core.http_request` may only reach globally routable addresses, unless an operator
allow-lists a network (`http_allow_networks`). The host is resolved here and every address it
resolves to must pass, so a DNS name pointing at 169.254.169.254 or 10.0.0.1 is refused too.
(A DNS answer that changes between this check and the connection is a residual risk; the
transport below pins nothing. Operators who need more put an egress proxy in front.)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from casefold.errors import InvalidInputError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata endpoints of the big clouds: refused even when "public" by address.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class URLNotAllowedError(InvalidInputError):
    pass


class URLGuard:
    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self.allow: list[IPNetwork] = [
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        ]

    def _allowed(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if any(addr in net for net in self.allow):
            return True
        if addr in _METADATA:
            return False
        return addr.is_global

    def check(self, url: str) -> None:
        """Raise URLNotAllowedError unless every address of the URL's host may be reached."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise URLNotAllowedError(
                f"only http and https URLs are allowed, not {parts.scheme!r}", field="url"
            )
        host = parts.hostname
        if not host:
            raise URLNotAllowedError("the URL has no host", field="url")
        try:
            addrs = {ipaddress.ip_address(host)}
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
            except OSError as exc:
                raise URLNotAllowedError(
                    f"cannot resolve {host}: {exc.strerror}", field="url"
                ) from None
            addrs = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
        for addr in addrs:
            if not self._allowed(addr):
                raise URLNotAllowedError(
                    f"{host} resolves to {addr}, a private, loopback, link-local or metadata "
                    "address; add its network to http_allow_networks to allow it",
                    field="url",
                )
