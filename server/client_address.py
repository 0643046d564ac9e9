"""Which address a request comes from: the peer's, or, when the peer is a reverse proxy
the deployment trusts, the address that proxy received the request from.

Behind a proxy (deploy/nginx.conf) every request's peer is the proxy, which names the
client in X-Forwarded-For by appending the address it was connected from to whatever
the request already carried. Anyone can send that header, so it is believed only from a
peer in the ``trusted_proxies`` setting, and read from the right: the addresses trusted
proxies appended are skipped up to the first one no trusted proxy stands at, which is
the client as the outermost trusted proxy saw it. Whatever lies left of that the client
wrote itself. Everything that keys on the client (the sign-in throttle, the access logs)
asks `client_address`, so a spoofed header cannot lend one client another's allowance.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

from media.address_policy import Address, Network

from .appkeys import SETTINGS

FORWARDED_FOR = "X-Forwarded-For"
UNKNOWN = "unknown"


def client_address(request: web.BaseRequest) -> str:
    """The address of the client ``request`` comes from (see the module's docstring)."""
    # A request aiohttp made up to answer one it could not parse reached no app (its
    # `app` would fail an assertion) and has no parsed headers: only its peer is known.
    match_info = getattr(request, "_match_info", None)
    if match_info is None:
        return believed_client(request.remote, (), ())
    settings = match_info.current_app.get(SETTINGS)
    trusted = settings.trusted_proxies if settings is not None else ()
    return believed_client(request.remote, request.headers.getall(FORWARDED_FOR, ()), trusted)


def believed_client(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str:
    """The client's address, given the connection's ``peer``, the X-Forwarded-For
    header(s) in the order received, and the ``trusted`` proxies' networks."""
    if not peer:
        return UNKNOWN
    nearest = _parse(peer)
    if nearest is None or not _is_trusted(nearest, trusted):
        return str(nearest) if nearest is not None else peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        address = _parse(hop)
        if address is None:
            # Only a trusted hop wrote what lies right of here, and this is not an
            # address: the nearest hop that was one is all that is known.
            break
        nearest = address
        if not _is_trusted(address, trusted):
            break
    # When every hop is a trusted proxy, the left-most one is where the request began.
    return str(nearest)


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(net.version == address.version and address in net for net in trusted)


def _parse(text: str) -> Address | None:
    """An address as a proxy writes one (``[v6]`` and a ``:port`` accepted), IPv4-mapped
    IPv6 as IPv4 (what a dual-stack socket reports); None for anything else."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address: Address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        return address.ipv4_mapped or address
    return address
