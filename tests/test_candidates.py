"""Remote candidates with real aiortc peers: the server sends no check to an address its
address policy refuses, whether the client trickles it or writes it in the offer, and the
call still connects over the addresses the policy allows."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aioice.ice import get_host_addresses
from hypothesis import given
from hypothesis import strategies as st

from common.names import ParticipantId, Seat
from media.address_policy import ANY_UNICAST, AddressPolicy
from media.candidates import offer_within_policy, remote_candidate
from media.errors import SdpError, TooManyCandidates
from media.participant import MAX_CANDIDATES, Participant
from media.types import NullSink

from .media import SyntheticParticipant, wait_for


@dataclass
class Listener(asyncio.DatagramProtocol):
    """A UDP port on loopback that counts what reaches it (STUN checks, if any)."""

    datagrams: list[bytes] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.datagrams.append(data)


@pytest.fixture
async def loopback_port() -> AsyncIterator[tuple[int, Listener]]:
    listener = Listener()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: listener, local_addr=("127.0.0.1", 0)
    )
    yield transport.get_extra_info("sockname")[1], listener
    transport.close()


def this_hosts_addresses() -> AddressPolicy:
    """Exactly the addresses the test's aiortc client offers (its host candidates); these
    never include loopback."""
    return AddressPolicy(
        tuple(
            ipaddress.ip_network(address)
            for address in get_host_addresses(use_ipv4=True, use_ipv6=True)
        )
    )


def loopback_candidate(port: int) -> str:
    return f"candidate:9 1 udp 2130706431 127.0.0.1 {port} typ host"


def trickling(sdp: str) -> str:
    """The offer as a trickling browser sends it: more candidates may follow."""
    return sdp.replace("a=end-of-candidates\r\n", "")


def with_loopback_candidate(port: int) -> Callable[[str], str]:
    """The offer with a loopback candidate in every media section (aiortc reads a bundled
    offer's candidates from one of them)."""

    def edit(sdp: str) -> str:
        end = "a=end-of-candidates\r\n"
        return sdp.replace(end, f"a={loopback_candidate(port)}\r\n{end}")

    return edit


def hosts_gone(sdp: str) -> str:
    return "".join(line for line in sdp.splitlines(True) if not line.startswith("a=candidate:"))


@dataclass
class Call:
    server: Participant
    client: SyntheticParticipant

    def remote_addresses(self) -> set[str]:
        transport = self.server.pc.getTransceivers()[0].receiver.transport.transport
        return {candidate.ip for candidate in transport.getRemoteCandidates()}


async def start_call(
    policy: AddressPolicy, edit: Callable[[str], str], trickle: list[str] | None = None
) -> Call:
    """A server-side participant under ``policy`` and an aiortc client; ``trickle`` is
    sent as soon as the server has answered, before the client could connect."""
    server = Participant(
        ParticipantId("iv_test-applicant-1"),
        Seat.APPLICANT,
        NullSink(),
        on_failed=lambda participant: None,
        address_policy=policy,
    )
    client = SyntheticParticipant(Seat.APPLICANT)

    async def join(seat: Seat, sdp: str) -> str:
        answer = await server.accept_offer(edit(sdp), [Seat.CBSA, Seat.CBP])
        for candidate in trickle or []:
            await server.add_candidate(candidate, "0", None)
        return answer

    await client.connect(join)
    return Call(server, client)


async def end(call: Call) -> None:
    await call.client.close()
    await call.server.close()


async def test_a_trickled_loopback_candidate_gets_no_check_and_the_call_connects(
    loopback_port: tuple[int, Listener],
) -> None:
    port, listener = loopback_port
    call = await start_call(this_hosts_addresses(), trickling, [loopback_candidate(port)])
    try:
        await wait_for(lambda: call.server.connection_state == "connected")
        await asyncio.sleep(0.5)
        assert "127.0.0.1" not in call.remote_addresses()
        assert call.remote_addresses()  # the client's own addresses were kept
        assert listener.datagrams == []
    finally:
        await end(call)


async def test_a_loopback_candidate_in_the_offer_gets_no_check_and_the_call_connects(
    loopback_port: tuple[int, Listener],
) -> None:
    port, listener = loopback_port
    call = await start_call(this_hosts_addresses(), with_loopback_candidate(port))
    try:
        await wait_for(lambda: call.server.connection_state == "connected")
        await asyncio.sleep(0.5)
        assert "127.0.0.1" not in call.remote_addresses()
        assert listener.datagrams == []
    finally:
        await end(call)


@pytest.mark.parametrize("how", ["trickled", "in the offer"])
async def test_where_loopback_is_allowed_its_candidate_is_checked(
    loopback_port: tuple[int, Listener], how: str
) -> None:
    """The listener hears checks when they are sent (so its silence above means none)."""
    port, listener = loopback_port
    if how == "trickled":
        call = await start_call(ANY_UNICAST, trickling, [loopback_candidate(port)])
    else:  # the only candidate, or the call may connect before its turn comes
        only_loopback = with_loopback_candidate(port)
        call = await start_call(ANY_UNICAST, lambda sdp: only_loopback(hosts_gone(sdp)))
    try:
        assert "127.0.0.1" in call.remote_addresses()
        await wait_for(lambda: bool(listener.datagrams), within=5)
    finally:
        await end(call)


async def test_candidates_past_the_limit_are_refused_dropped_ones_counting_too() -> None:
    dropped = [
        f"candidate:{i} 1 udp 2130706431 203.0.113.{i} 40000 typ host"
        for i in range(MAX_CANDIDATES)
    ]
    call = await start_call(this_hosts_addresses(), trickling, dropped)
    try:
        with pytest.raises(TooManyCandidates, match=f"at most {MAX_CANDIDATES}"):
            await call.server.add_candidate(dropped[0], "0", None)
    finally:
        await end(call)


@pytest.mark.parametrize("port", [0, -5, 65536, 99999])
def test_a_candidate_naming_an_impossible_port_is_refused(port: int) -> None:
    with pytest.raises(SdpError, match="ports run from 1 to 65535"):
        remote_candidate(f"candidate:1 1 udp 1 203.0.114.1 {port} typ host", ANY_UNICAST)


def test_an_offer_keeps_the_candidates_the_policy_allows_and_only_those() -> None:
    offer = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 1 203.0.114.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 1 10.0.0.1 5000 typ host\r\n"
        "a=candidate:3 1 udp 1 4f6c3a.local 5000 typ host\r\n"
        "a=candidate:4 1 tcp 1 203.0.114.1 9 typ host tcptype active\r\n"
        "a=end-of-candidates\r\n"
    )
    kept = offer_within_policy(offer, AddressPolicy())
    assert [line for line in kept.splitlines() if "candidate" in line] == [
        "a=candidate:1 1 udp 1 203.0.114.1 5000 typ host",
        "a=end-of-candidates",
    ]


TOKENS = st.one_of(
    st.sampled_from(["udp", "UDP", "tcp", "typ", "host", "srflx", "raddr", "rport", "tcptype"]),
    st.ip_addresses().map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)


@given(st.lists(TOKENS, max_size=14).map(" ".join), st.booleans())
def test_any_candidate_text_is_kept_dropped_or_refused_as_malformed(
    text: str, prefixed: bool
) -> None:
    try:
        kept = remote_candidate(("candidate:" if prefixed else "") + text, AddressPolicy())
    except SdpError:
        return
    if kept is not None:
        assert 1 <= kept.port <= 65535 and kept.protocol.lower() == "udp"
        assert AddressPolicy().allows(kept.ip)
