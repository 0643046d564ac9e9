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


# --- the coturn configuration -------------------------------------------------------

_ALL_IPV4 = "0.0.0.0-255.255.255.255"
_ALL_IPV6 = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


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
) -> str:
    """A coturn (4.6) configuration that relays only to ``media_peers``, for credentials
    minted with ``secret``. ``command`` is the command line that made it, for the header."""
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
        "# Peers: the relay sends only to the media workers. coturn refuses loopback peers",
        "# (allow-loopback-peers is not set) and multicast ones, then checks allowed-peer-ip",
        "# before denied-peer-ip: so everything is denied except the media workers.",
        "no-multicast-peers",
        "no-tcp-relay",
        f"denied-peer-ip={_ALL_IPV4}",
        f"denied-peer-ip={_ALL_IPV6}",
    ]
    lines += [f"allowed-peer-ip={_peer_range(peer)}" for peer in media_peers]
    lines += [
        "",
        "# Logs to stdout (journald), without 'verbose': sessions and usernames, never",
        "# passwords or the secret.",
        "log-file=stdout",
        "simple-log",
    ]
    return "\n".join(lines) + "\n"
