"""TURN relays for browsers that reach nothing but TCP 443: time-limited credentials (the
TURN REST API scheme coturn's ``use-auth-secret`` checks, as LiveKit and Jitsi issue
them) and the coturn configuration that accepts them.

A credential is ``username = "<expiry, unix seconds>:<who>"`` and ``password =
base64(HMAC-SHA1(secret, username))``: coturn recomputes the password from the shared
secret, so the server stores nothing and a credential dies on its own at its expiry.
coturn checks the expiry when an allocation is made; an allocation made in time lives
on through its refreshes, so a call may outlast the credential that opened it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from common.secret import Secret
from media import protocol

if TYPE_CHECKING:
    from .settings import Settings

# coturn splits the username at its first ':' (the expiry before it), and the name shows
# in its logs: plain letters, digits and . _ - only.
_WHO = re.compile(r"[A-Za-z0-9._-]{1,128}")

USER_QUOTA = 12
"""Allocations one username may hold at once: a browser makes one per TURN URL and
ICE restart, so a dozen leaves room while bounding what one stolen credential takes."""
TOTAL_QUOTA = 2000
"""Allocations the relay holds at once, all users together."""
STALE_NONCE_SECONDS = 600


@dataclass(frozen=True)
class TurnCredential:
    username: str
    password: Secret[str]
    expires: datetime


class IceServer(TypedDict):
    """An RTCIceServer as the browser's ``new RTCPeerConnection({iceServers})`` takes it."""

    urls: list[str]
    username: str
    credential: str


def mint(secret: Secret[str], participant_id: str, now: datetime, lifetime: int) -> TurnCredential:
    """A credential for ``participant_id`` (shown in the relay's logs) valid from ``now``
    for ``lifetime`` seconds."""
    if not secret:
        raise ValueError("no TURN secret to mint credentials with")
    if not _WHO.fullmatch(participant_id):
        raise ValueError("a TURN participant id is 1 to 128 letters, digits, '.', '_' or '-'")
    if lifetime <= 0:
        raise ValueError("a TURN credential's lifetime is a positive number of seconds")
    expires = now + timedelta(seconds=lifetime)
    username = f"{int(expires.timestamp())}:{participant_id}"
    digest = hmac.new(secret.reveal().encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, Secret(base64.b64encode(digest).decode()), expires)


def ice_servers(settings: Settings, participant_id: str, now: datetime) -> list[IceServer]:
    """The TURN servers for one participant's peer connection, with fresh credentials;
    none when TURN is not configured."""
    if not settings.turn_urls or not settings.turn_secret:
        return []
    credential = mint(settings.turn_secret, participant_id, now, settings.turn_credential_seconds)
    return [
        IceServer(
            urls=list(settings.turn_urls),
            username=credential.username,
            credential=credential.password.reveal(),
        )
    ]


def media_relays(settings: Settings, participant_id: str, now: datetime) -> list[protocol.Relay]:
    """The TURN servers for the media worker's end of one participant's connection, with
    credentials of its own (``participant_id`` names it in the relay's logs); none unless
    `Settings.media_turn`. The worker gets credentials, never the secret.

    aiortc relays through the first TURN URL it can use and ignores the rest, so UDP comes
    first: the worker's network is the operator's, where UDP to the relay is the rule, and
    TCP or TLS would hold every packet up behind a lost one."""
    if not settings.media_turn:
        return []
    return [
        protocol.Relay(
            urls=sorted(server["urls"], key=_transport_rank),
            username=server["username"],
            credential=server["credential"],
        )
        for server in ice_servers(settings, participant_id, now)
    ]


def _transport_rank(url: str) -> int:
    if url.startswith("turns:"):
        return 2
    return 1 if url.endswith("?transport=tcp") else 0


# --- the coturn configuration -------------------------------------------------------

_ALL_IPV4 = "0.0.0.0-255.255.255.255"
_ALL_IPV6 = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

# What a relay that may send to the public Internet must still never reach: addresses that
# lead into the relay's own networks or machine (a TURN server is otherwise an open door
# to them), and addresses no browser has (IANA's special-purpose registries).
_NOT_PUBLIC = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private (RFC 1918)
    "100.64.0.0/10",  # carrier-grade NAT, the provider's side
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, with the clouds' metadata service at 169.254.169.254
    "172.16.0.0/12",  # private (RFC 1918)
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relays
    "192.168.0.0/16",  # private (RFC 1918)
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
    # Not "::/127": coturn 4.6 takes a range from "::" as starting anywhere, so it would
    # hold every IPv4 address too. It refuses the unspecified address on its own.
    "::1/128",  # loopback
    "::ffff:0:0/96",  # IPv4-mapped: the IPv4 rules above, not to be gone round
    "64:ff9b::/96",  # NAT64, which could lead to any IPv4 address
    "64:ff9b:1::/48",  # local NAT64
    "100::/64",  # discard
    "2001::/23",  # IETF protocol assignments
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4, which embeds IPv4 addresses
    "fc00::/7",  # unique local (the private addresses of IPv6)
    "fe80::/10",  # link-local
    "ff00::/8",  # multicast
)


def parse_media_peers(raw: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The media workers' addresses (or networks) the relay may send to."""
    peers = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            network = ipaddress.ip_network(part, strict=True)
        except ValueError:
            raise ValueError(
                f"{part!r} is not an IP address or network (such as 10.0.0.5 or 10.0.0.0/24)"
            ) from None
        if network.is_loopback or network.is_unspecified or network.is_multicast:
            raise ValueError(
                f"{part!r}: the relay never sends to loopback, unspecified or multicast "
                "addresses; give the media workers' addresses the relay reaches them on"
            )
        peers.append(network)
    if not peers:
        raise ValueError("give at least one media worker address")
    return peers


def _ip(raw: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise ValueError(f"{what} {raw!r} is not an IP address") from None


def _peer_range(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    first, last = network.network_address, network.broadcast_address
    return str(first) if first == last else f"{first}-{last}"


def coturn_config(
    secret: Secret[str],
    realm: str,
    media_peers: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
    listening_ip: str | None = None,
    external_ip: str | None = None,
    cert: str | None = None,
    pkey: str | None = None,
    command: str = "",
    public_peers: bool = False,
) -> str:
    """A coturn (4.6) configuration that relays only to ``media_peers``, for credentials
    minted with ``secret``; with ``public_peers``, to any public address as well (the
    browsers', when the media workers relay too: `Settings.media_turn`). ``command`` is the
    command line that made it, for the header."""
    if not secret:
        raise ValueError("set NEXUS_TURN_SECRET: coturn checks the credentials with it")
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", realm):
        raise ValueError(f"realm {realm!r}: a domain name such as turn.example.org")
    if (cert is None) != (pkey is None):
        raise ValueError("--cert and --pkey go together (TLS on 443 needs both)")
    if not media_peers:
        raise ValueError("give at least one media worker address")
    lines = [
        "# coturn configuration for NEXUS interviews' TURN relay.",
        f"# Generated by: {command}" if command else "# Generated by nexus-interview turn-config.",
        "# Regenerate it rather than editing it; the static-auth-secret is NEXUS_TURN_SECRET",
        "# (the interview server mints each participant's credentials with the same secret).",
        "# Relay ports: UDP 49152-65535 (coturn's default) must reach the media workers, and",
        "# they take the relay's address only if public or in NEXUS_MEDIA_PEER_NETWORKS.",
        *(
            ["# With the media workers relaying too, those ports must also reach the browsers."]
            if public_peers
            else []
        ),
        "",
        "# Credentials: '<expiry>:<participant>' / base64(HMAC-SHA1(secret, username)).",
        "use-auth-secret",
        f"static-auth-secret={secret.reveal()}",
        f"realm={realm}",
        "fingerprint",
        f"stale-nonce={STALE_NONCE_SECONDS}",
        f"user-quota={USER_QUOTA}",
        f"total-quota={TOTAL_QUOTA}",
        "",
        "# Listeners: TURN on 3478 (UDP and TCP)"
        + (", and TURN over TLS on 443 for networks that allow nothing else" if cert else "")
        + ".",
    ]
    if cert:
        lines += [
            "# Debian's unit runs coturn as user turnserver: to bind 443 it needs",
            "# AmbientCapabilities=CAP_NET_BIND_SERVICE in a drop-in (systemctl edit coturn).",
        ]
    lines.append("listening-port=3478")
    if listening_ip is not None:
        lines.append(f"listening-ip={_ip(listening_ip, '--listening-ip')}")
    if external_ip is not None:
        public, _, private = external_ip.partition("/")
        shown = _ip(public, "--external-ip")
        if private:
            shown += "/" + _ip(private, "--external-ip's private part")
        lines.append(f"external-ip={shown}")
    if cert and pkey:
        lines += [
            "tls-listening-port=443",
            f"cert={cert}",
            f"pkey={pkey}",
            "no-tlsv1",
            "no-tlsv1_1",
        ]
    else:
        lines.append("no-tls")
    lines += [
        # Browsers never speak TURN over DTLS: one listener fewer to attack.
        "no-dtls",
        "no-cli",
        "no-software-attribute",
        "no-rfc5780",
        "no-stun-backward-compatibility",
        "response-origin-only-with-rfc5780",
        "",
        *(_public_peers() if public_peers else _media_peers_only()),
    ]
    lines += [f"allowed-peer-ip={_peer_range(peer)}" for peer in media_peers]
    lines += [
        "",
        "# Logs to stdout (journald), without 'verbose': its start-up, then each session",
        "# as it ends; never a password or the secret.",
        "log-file=stdout",
        "simple-log",
    ]
    return "\n".join(lines) + "\n"


def _media_peers_only() -> list[str]:
    return [
        "# Peers: the relay sends only to the media workers. coturn refuses loopback peers",
        "# (allow-loopback-peers is not set) and multicast ones, then checks allowed-peer-ip",
        "# before denied-peer-ip: so everything is denied except the media workers.",
        "no-multicast-peers",
        "no-tcp-relay",
        f"denied-peer-ip={_ALL_IPV4}",
        f"denied-peer-ip={_ALL_IPV6}",
    ]


def _public_peers() -> list[str]:
    return [
        "# Peers: the media workers relay too (NEXUS_MEDIA_TURN), so the browsers they call",
        "# are peers of the workers' allocations: the relay sends to public addresses. It",
        "# never sends into private, carrier-grade NAT, loopback, link-local (the clouds'",
        "# metadata service), multicast or reserved ranges, IPv4 and IPv6, which would open",
        "# the relay's own networks to anyone holding a credential. coturn refuses loopback",
        "# and multicast peers, then checks allowed-peer-ip before denied-peer-ip: so the",
        "# media workers, allowed below, are reached even on a private address.",
        "no-multicast-peers",
        "no-tcp-relay",
        *(f"denied-peer-ip={_peer_range(ipaddress.ip_network(n))}" for n in _NOT_PUBLIC),
    ]
