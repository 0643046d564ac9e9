"""The address policy: which remote candidate addresses the server may send checks to."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.address_policy import ANY_UNICAST, AddressPolicy, parse_networks

REFUSED_BY_DEFAULT = [
    "127.0.0.1",  # loopback
    "127.8.9.10",
    "::1",
    "::ffff:127.0.0.1",  # loopback, through a dual-stack socket
    "169.254.169.254",  # link-local (cloud metadata services live here)
    "fe80::1",
    "fe80::1%eth0",
    "10.1.2.3",  # RFC 1918
    "172.16.0.9",
    "192.168.1.1",
    "fd00::2",  # unique local
    "100.64.0.1",  # carrier-grade NAT
    "192.0.2.2",  # documentation
    "2001:db8::1",
    "240.0.0.1",  # reserved
    "::7f00:1",  # IPv4-compatible, deprecated
    "0.0.0.0",  # unspecified
    "::",
    "224.0.0.1",  # multicast
    "ff02::1",
    "255.255.255.255",  # broadcast
    "host.local",  # names are never resolved for a client
    "example.org",
    "",
    "1.2.3",
]
NEVER_ALLOWED = ["0.0.0.0", "::", "224.0.0.1", "239.1.2.3", "ff02::1", "255.255.255.255"]


@pytest.mark.parametrize("host", ["8.8.8.8", "203.0.114.5", "2001:4860:4860::8888", "1.1.1.1"])
def test_public_unicast_addresses_are_allowed(host: str) -> None:
    assert AddressPolicy().allows(host)


@pytest.mark.parametrize("host", REFUSED_BY_DEFAULT)
def test_loopback_private_local_and_reserved_addresses_are_refused_by_default(host: str) -> None:
    assert not AddressPolicy().allows(host)


def test_listed_networks_are_allowed_and_nothing_next_to_them() -> None:
    policy = AddressPolicy(parse_networks("127.0.0.0/8, 10.0.0.0/8,fd00::/8"))
    for host in ("127.0.0.1", "::ffff:127.0.0.1", "10.255.0.1", "fd00::2", "8.8.8.8"):
        assert policy.allows(host), host
    for host in ("::1", "172.16.0.9", "192.168.1.1", "fe80::1", "169.254.1.1"):
        assert not policy.allows(host), host


@pytest.mark.parametrize("host", NEVER_ALLOWED)
def test_unspecified_multicast_and_broadcast_are_refused_even_when_listed(host: str) -> None:
    assert not ANY_UNICAST.allows(host)


def test_an_ipv4_network_says_nothing_of_ipv6_addresses() -> None:
    policy = AddressPolicy(parse_networks("0.0.0.0/0"))
    assert policy.allows("10.0.0.1")
    assert not policy.allows("fd00::1")


@given(
    st.ip_addresses(v=4).map(int),
    st.integers(min_value=8, max_value=32),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_unicast_address_inside_a_listed_network_is_allowed(
    base: int, prefix: int, offset: int
) -> None:
    network = ipaddress.IPv4Network((base, prefix), strict=False)
    address = network.network_address + offset % network.num_addresses
    policy = AddressPolicy((network,))
    expected = not (
        address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255"
    )
    assert policy.allows(str(address)) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("10.0.0.0/33", "is not a network"),
        ("ten", "is not a network"),
        ("10.1.2.3/8", "did you mean 10.0.0.0/8"),
    ],
)
def test_a_bad_network_list_is_refused_with_the_reason(raw: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_networks(raw)


def test_a_network_list_may_be_empty_and_a_bare_address_is_one_host() -> None:
    assert parse_networks(" , ") == ()
    assert parse_networks("127.0.0.1") == (ipaddress.IPv4Network("127.0.0.1/32"),)
