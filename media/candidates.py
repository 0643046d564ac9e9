"""The remote ICE candidates a client names, in its offer or trickled one by one: which
of them the server keeps and so sends connectivity checks to.

A candidate whose address the `AddressPolicy` refuses is dropped without a word: browsers
name private, link-local and mDNS (``.local``) addresses in the normal course, and an error
for each would count against a client that did nothing wrong. A candidate that is
malformed, or names a port no packet can go to, is the client's mistake and gets an
`SdpError` (a port out of range would otherwise end the participant's ICE socket with a
fatal write error on the first check). Candidates over TCP are dropped: the server's ICE
agent gathers UDP only, so they could never be paired.
"""

from __future__ import annotations

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

from .address_policy import AddressPolicy
from .errors import SdpError

CANDIDATE_LINE = "a=candidate:"


def remote_candidate(text: str, policy: AddressPolicy) -> RTCIceCandidate | None:
    """The candidate ``text`` (``candidate:…`` as the browser gives it) if the server
    keeps it, None if it is dropped, `SdpError` if it is malformed."""
    try:
        candidate = candidate_from_sdp(text.removeprefix("candidate:"))
    except (AssertionError, ValueError, IndexError):
        raise SdpError("the ICE candidate is malformed") from None
    if not 1 <= candidate.port <= 65535:
        raise SdpError(
            "the ICE candidate names port {port}; ports run from 1 to 65535", port=candidate.port
        )
    if candidate.protocol.lower() != "udp" or not policy.allows(candidate.ip):
        return None
    return candidate


def offer_within_policy(sdp: str, policy: AddressPolicy) -> str:
    """The offer without the candidate lines the server drops; `SdpError` if one of them
    is malformed."""
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not line.startswith(CANDIDATE_LINE)
        or remote_candidate(line.removeprefix("a=").strip(), policy) is not None
    )
