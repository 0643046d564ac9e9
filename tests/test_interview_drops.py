"""Drops are seen within seconds, logged with their real length, and end in `left` after the
grace period: real aiortc participants through the signalling endpoint, whose connections
vanish the way a closed tab's does (nothing more arrives from it, and no goodbye)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from common.names import Kind, Seat
from server.appkeys import LIVES
from server.settings import Settings
from signalling import messages as m

from .calls import Seated, join_and_call, open_socket, seated_interview
from .fakes import World
from .media import SyntheticParticipant, wait_for

GRACE = 5  # seconds: room for a drop and a rejoin within it, short enough to wait out
SEEN_WITHIN = 5.0  # seconds from the connection's end to the others' `drop`


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(reconnect_grace_seconds=GRACE)


def _ice_protocols(person: SyntheticParticipant) -> Iterator[Any]:
    """The UDP protocols the person's connection sends through (aiortc and aioice
    internals: a test's way to pull the cable)."""
    assert person.pc is not None
    ice = person.pc.getTransceivers()[0].sender.transport.transport
    yield from ice._connection._protocols


class _PulledCable:
    """A datagram transport that sends nothing (uvloop's transports, being C objects,
    cannot have their ``sendto`` replaced, so the protocol gets this one instead)."""

    def __init__(self, plugged: Any) -> None:
        self.plugged = plugged

    def sendto(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plugged, name)


def vanish(person: SyntheticParticipant) -> None:
    """Nothing more leaves the person's connection: no media, no consent replies, no DTLS
    goodbye, as when a tab is closed or a cable pulled. (aiortc's own ``pc.close()`` says
    goodbye with a DTLS close_notify, which a browser tab that goes does not send.)"""
    for protocol in _ice_protocols(person):
        protocol.transport = _PulledCable(protocol.transport)


def come_back(person: SyntheticParticipant) -> None:
    """The cable is back: the same connection sends again."""
    for protocol in _ice_protocols(person):
        protocol.transport = protocol.transport.plugged


async def peer_event(seated: Seated, within: float) -> m.Peer:
    """The next `peer` message on this socket, within ``within`` seconds."""

    async def next_peer() -> m.Peer:
        while True:
            message = m.decode_server(await seated.ws.receive_str())
            if isinstance(message, m.Peer):
                return message

    return await asyncio.wait_for(next_peer(), within)


async def in_a_call(
    world: World,
) -> tuple[dict[Seat, Seated], str, dict[Seat, SyntheticParticipant]]:
    """The applicant and the CBSA officer in a call, the applicant's media reaching CBSA."""
    sockets, interview_id = await seated_interview(world)
    people = {seat: SyntheticParticipant(seat) for seat in (Seat.APPLICANT, Seat.CBSA)}
    for seat, person in people.items():
        await join_and_call(sockets[seat], interview_id, person)
    cbsa = people[Seat.CBSA]
    await wait_for(lambda: cbsa.got(Seat.APPLICANT, Kind.VIDEO).frames >= 10, within=20)
    return sockets, interview_id, people


async def applicant_events(world: World, interview_id: str) -> list[tuple[str, dict[str, Any]]]:
    await world.server.app[LIVES].drain()
    events = await world.store.events.for_interview(interview_id)
    return [(e.kind, e.detail) for e in events if e.seat == "applicant"]


async def test_a_connection_that_vanishes_is_a_drop_within_seconds(world: World) -> None:
    sockets, interview_id, people = await in_a_call(world)
    try:
        vanish(people[Seat.APPLICANT])  # the socket stays open: the network is gone
        peer = await peer_event(sockets[Seat.CBSA], SEEN_WITHIN)
        assert peer == m.Peer(seat="applicant", event="drop")
        # someone joining now is not told the dropped seat is there
        joined = await sockets[Seat.CBSA].ask(m.Join(interview_id=interview_id))
        assert isinstance(joined, m.Joined) and "applicant" not in joined.present
        events = await applicant_events(world, interview_id)
    finally:
        for person in people.values():
            await person.close()
    assert [kind for kind, _ in events] == ["join", "drop"]


@pytest.mark.parametrize("goodbye", [False, True], ids=["vanished", "closed-by-aiortc"])
async def test_a_closed_tab_is_a_drop_and_its_rejoin_counts_the_whole_gap(
    world: World, goodbye: bool
) -> None:
    sockets, interview_id, people = await in_a_call(world)
    applicant, cbsa = people[Seat.APPLICANT], sockets[Seat.CBSA]
    loop = asyncio.get_running_loop()
    try:
        gone = loop.time()
        if goodbye:
            await applicant.close()
        else:
            vanish(applicant)
        await sockets[Seat.APPLICANT].ws.close()
        assert await peer_event(cbsa, SEEN_WITHIN) == m.Peer(seat="applicant", event="drop")
        await asyncio.sleep(max(0.0, gone + 2.0 - loop.time()))

        again = await open_socket(world, sockets[Seat.APPLICANT].client)  # the reopened tab
        started = loop.time()
        await join_and_call(again, interview_id, applicant)
        done = loop.time()
        assert await peer_event(cbsa, SEEN_WITHIN) == m.Peer(seat="applicant", event="rejoin")
        await wait_for(lambda: people[Seat.CBSA].got(Seat.APPLICANT, Kind.VIDEO).frames >= 20)
        events = await applicant_events(world, interview_id)
    finally:
        for person in people.values():
            await person.close()
    assert [kind for kind, _ in events] == ["join", "drop", "rejoin"]
    gap = events[-1][1]["gap_seconds"]
    assert started - gone <= gap <= done - gone + 1.0


async def test_a_rejoin_before_the_drop_was_noticed_still_logs_the_drop_and_its_gap(
    world: World,
) -> None:
    sockets, interview_id, people = await in_a_call(world)
    applicant = people[Seat.APPLICANT]
    loop = asyncio.get_running_loop()
    try:
        vanish(applicant)
        gone = loop.time()
        await asyncio.sleep(1.0)  # back before anything could tell the media had stopped
        again = await open_socket(world, sockets[Seat.APPLICANT].client)  # a reloaded tab
        started = loop.time()
        await join_and_call(again, interview_id, applicant)
        done = loop.time()
        events = await applicant_events(world, interview_id)
    finally:
        for person in people.values():
            await person.close()
    assert [kind for kind, _ in events] == ["join", "drop", "rejoin"]
    gap = events[-1][1]["gap_seconds"]
    assert started - gone <= gap <= done - gone + 1.0


async def test_media_back_on_the_same_connection_is_a_rejoin_with_the_gap(world: World) -> None:
    sockets, interview_id, people = await in_a_call(world)
    applicant, cbsa = people[Seat.APPLICANT], sockets[Seat.CBSA]
    loop = asyncio.get_running_loop()
    try:
        vanish(applicant)  # a network outage of a few seconds
        gone = loop.time()
        assert await peer_event(cbsa, SEEN_WITHIN) == m.Peer(seat="applicant", event="drop")
        back = loop.time()
        come_back(applicant)
        assert await peer_event(cbsa, SEEN_WITHIN) == m.Peer(seat="applicant", event="rejoin")
        events = await applicant_events(world, interview_id)
    finally:
        for person in people.values():
            await person.close()
    assert [kind for kind, _ in events] == ["join", "drop", "rejoin"]
    gap = events[-1][1]["gap_seconds"]
    assert back - gone <= gap <= back - gone + 2.0


async def test_a_drop_not_rejoined_within_the_grace_period_is_left(world: World) -> None:
    sockets, interview_id, people = await in_a_call(world)
    cbsa = sockets[Seat.CBSA]
    loop = asyncio.get_running_loop()
    try:
        vanish(people[Seat.APPLICANT])
        gone = loop.time()
        await sockets[Seat.APPLICANT].ws.close()
        assert await peer_event(cbsa, SEEN_WITHIN) == m.Peer(seat="applicant", event="drop")
        assert await peer_event(cbsa, GRACE + 3) == m.Peer(seat="applicant", event="left")
        assert loop.time() - gone >= GRACE - 0.5
        events = await applicant_events(world, interview_id)
    finally:
        for person in people.values():
            await person.close()
    assert [kind for kind, _ in events] == ["join", "drop", "left"]


async def test_a_seat_whose_camera_stopped_is_not_dropped_while_its_sound_arrives(
    world: World,
) -> None:
    sockets, interview_id, people = await in_a_call(world)
    applicant = people[Seat.APPLICANT]

    async def no_more_pictures() -> None:
        await asyncio.Event().wait()

    try:
        applicant.video.recv = no_more_pictures  # type: ignore[method-assign,assignment]
        with pytest.raises(TimeoutError):
            await peer_event(sockets[Seat.CBSA], SEEN_WITHIN + 1)
        events = await applicant_events(world, interview_id)
    finally:
        for person in people.values():
            await person.close()
    assert [kind for kind, _ in events] == ["join"]
