"""URLGuard: playbooks reach public addresses only, unless an operator allow-lists a network."""

from __future__ import annotations

import pytest

from casefold.connectors.netguard import URLGuard, URLNotAllowedError
from casefold.errors import InvalidInputError

REFUSED_ADDRESSES = [
    "http://127.0.0.1/",
    "http://127.8.9.10:8080/x",
    "http://10.0.0.1/",
    "https://10.255.3.4/api",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",  # Alibaba's metadata endpoint
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[fd00::1]/",
    "http://[fd12:3456::7]:8443/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
]


@pytest.mark.parametrize("url", REFUSED_ADDRESSES)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(url: str):
    with pytest.raises(URLNotAllowedError) as err:
        URLGuard().check(url)
    assert err.value.field == "url"
    assert "http_allow_networks" in err.value.message


def test_a_hostname_resolving_to_loopback_is_refused():
    with pytest.raises(URLNotAllowedError, match=r"localhost resolves to 127\.0\.0\.1"):
        URLGuard().check("http://localhost:8800/api")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://8.8.8.8:70/_x", "only http and https"),
        ("ftp://8.8.8.8/", "only http and https"),
        ("8.8.8.8/path", "only http and https"),  # no scheme at all
        ("http:///path", "no host"),
        ("http://", "no host"),
        ("https://:443/", "no host"),
    ],
)
def test_other_schemes_and_hostless_urls_are_refused(url: str, reason: str):
    with pytest.raises(URLNotAllowedError, match=reason):
        URLGuard().check(url)


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8/", "https://1.1.1.1:8443/dns-query?x=1", "https://[2606:4700::1111]/"]
)
def test_public_literals_pass_without_any_lookup(url: str, monkeypatch: pytest.MonkeyPatch):
    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("an IP literal must not be resolved")

    monkeypatch.setattr("socket.getaddrinfo", no_dns)
    URLGuard().check(url)  # no exception


def test_allow_networks_lets_a_private_network_through():
    guard = URLGuard(allow_networks=["127.0.0.0/8"])
    guard.check("http://127.0.0.1:9000/")
    guard.check("http://127.1.2.3/")
    with pytest.raises(URLNotAllowedError):
        guard.check("http://10.0.0.1/")  # only the listed network
    with pytest.raises(URLNotAllowedError):
        guard.check("file:///etc/passwd")  # the scheme rule still holds


def test_allow_networks_accepts_host_bits_and_ipv6():
    guard = URLGuard(allow_networks=["192.168.1.7/24", "fd00::/8"])
    guard.check("http://192.168.1.200/")
    guard.check("http://[fd00::5]/")
    with pytest.raises(URLNotAllowedError):
        guard.check("http://192.168.2.1/")


def test_every_resolved_address_must_pass(monkeypatch: pytest.MonkeyPatch):
    """A name with one public and one private address is refused (no picking the good one)."""

    def fake_dns(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        assert host == "mixed.example"
        return [
            (2, 1, 6, "", ("93.184.216.34", 443)),
            (2, 1, 6, "", ("10.1.2.3", 443)),
        ]

    monkeypatch.setattr("socket.getaddrinfo", fake_dns)
    with pytest.raises(URLNotAllowedError, match="10.1.2.3"):
        URLGuard().check("https://mixed.example/")


def test_unresolvable_host_is_refused(monkeypatch: pytest.MonkeyPatch):
    import socket

    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr("socket.getaddrinfo", no_such_host)
    with pytest.raises(URLNotAllowedError, match="cannot resolve nowhere.invalid"):
        URLGuard().check("https://nowhere.invalid/")


def test_refusal_is_an_input_error():
    assert issubclass(URLNotAllowedError, InvalidInputError)
