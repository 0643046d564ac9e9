"""Which remote addresses the server's peer connections may send connectivity checks to.

A client names addresses in its ICE candidates and the server sends STUN checks to each:
unchecked, any signed-in client could aim the server's packets at its own loopback
services or at the private network it stands in. Public unicast addresses are allowed;
loopback, link-local, private (RFC 1918, ULA, carrier-grade NAT), documentation and
reserved ones only inside networks the deployment lists; unspecified, multicast and
broadcast addresses never, as no peer answers there. Names (mDNS ``.local`` or DNS) are
refused too: resolving them for a client is work and a lookup of the client's choosing.

Pure: no I/O; imports nothing of ours.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ANY_NETWORK: tuple[Network, ...] = (
    ipaddress.IPv4Network("0.0.0.0/0"),
    ipaddress.IPv6Network("::/0"),
)
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


EVERY_NETWORK = "0.0.0.0/0,::/0"
"""For a demo or tests on one machine, whose addresses are loopback, private or reserved."""


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated networks in CIDR form (a bare address is one host); ValueError
    with a readable reason otherwise."""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError:
            try:
                loose = ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"{part!r} is not a network such as 10.0.0.0/8 or fd00::/8"
                ) from None
            raise ValueError(f"{part!r} has host bits set: did you mean {loose}?") from None
    return tuple(networks)


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses, plus any address inside ``networks``."""

    networks: tuple[Network, ...] = ()

    def allows(self, host: str) -> bool:
        """Whether checks may be sent to ``host``, a candidate's address as written."""
        try:
            address: Address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address):
            if address.scope_id is not None:
                return False  # names an interface of ours, not a place on a network
            # A dual-stack socket sends ::ffff:127.0.0.1 to the IPv4 loopback.
            address = address.ipv4_mapped or address
        if address.is_unspecified or address.is_multicast or address == _BROADCAST:
            return False
        if any(
            network.version == address.version and address in network for network in self.networks
        ):
            return True
        return address.is_global and not address.is_reserved


ANY_UNICAST = AddressPolicy(ANY_NETWORK)
"""Every address a peer can answer from, loopback and private ones included: for a server
whose peers share its machine or network (tests, development). A server facing the
Internet lists only the networks it must reach."""
