"""The control plane's side of the media plane: who may join as a worker, where rooms
are placed, and what a worker's loss does to its rooms."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from common.names import RoomId, Seat
from common.secret import Secret
from media import protocol as p
from recordings.keys import Identity
from server import media_plane
from server.app import media_welcome
from server.media_channel import REFUSED_CLOSE_CODE, MediaChannel
from server.media_plane import MediaMoved, MediaPlane, RoomItem
from server.received_media import ReceivedMedia
from server.session_records import SessionRecords
from server.settings import Settings
from server.worker_links import MediaUnavailable, WorkerLink

from .served import free_port

SECRET = b"s" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lost:
    def __init__(self) -> None:
        self.rooms: list[tuple[RoomId, str]] = []

    def __call__(self, room: RoomId, worker: str, since: datetime, listed: list[str]) -> None:
        self.rooms.append((room, worker))


def plane_of(settings: Settings, lost: Lost | None = None) -> MediaPlane:
    return MediaPlane(
        ReceivedMedia(SessionRecords(settings)),
        on_event=lambda room, event: None,
        on_lost=lost or Lost(),
        record=False,
    )


def worker(
    name: str, cores: int = 1, clock: Clock | None = None, plane: MediaPlane | None = None
) -> tuple[WorkerLink, list[p.Message]]:
    """A worker that keeps what it is sent and, given its ``plane``, says `Done` to every
    request but a `Leave` (which it keeps waiting)."""
    sent: list[p.Message] = []

    def receive(message: p.Message) -> None:
        sent.append(message)
        number = getattr(message, "request", None)
        if plane is not None and number is not None and not isinstance(message, p.Leave):
            done = p.Done(request=number)
            asyncio.get_running_loop().call_soon(plane.handle, link, done)

    link = WorkerLink(name, receive, cores, clock=clock or Clock())
    return link, sent


async def handshake(url: str, secret: bytes, name: str = "w1") -> tuple[Any, int | None]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        challenge = p.decode_to_worker(await ws.receive_bytes(timeout=5))
        assert isinstance(challenge, p.Challenge)
        proof = p.proof(secret, challenge.nonce, name)
        await ws.send_bytes(p.encode(p.Hello(worker=name, proof=proof)))
        message = await ws.receive(timeout=5)
        if message.type is aiohttp.WSMsgType.BINARY:
            return p.decode_to_worker(message.data), None
        return None, ws.close_code


async def test_a_worker_that_proves_the_secret_is_welcomed_with_public_recipients_only(
    settings: Settings,
) -> None:
    identity = Identity.generate()
    settings = settings.replace(cbsa_recipient=str(identity.recipient))
    plane = plane_of(settings)
    welcome = media_welcome(settings, SessionRecords(settings))
    channel = MediaChannel(plane, welcome, Secret(SECRET))
    await channel.start("127.0.0.1", free_port())
    try:
        welcomed, _ = await handshake(channel.url, SECRET)
        assert isinstance(welcomed, p.Welcome)
        assert welcomed.recipients == [str(identity.recipient)]
        assert str(identity.recipient).startswith("age1")
        assert "AGE-SECRET-KEY" not in repr(welcomed)
    finally:
        await plane.close()
        await channel.close()


async def test_a_worker_without_the_secret_is_refused_and_never_placed(
    settings: Settings,
) -> None:
    plane = plane_of(settings)
    channel = MediaChannel(plane, media_welcome(settings, SessionRecords(settings)), Secret(SECRET))
    await channel.start("127.0.0.1", free_port())
    try:
        welcomed, code = await handshake(channel.url, b"x" * 40)
        assert welcomed is None and code == REFUSED_CLOSE_CODE
        assert plane.workers == {}
    finally:
        await plane.close()
        await channel.close()


async def test_rooms_go_to_the_least_loaded_live_worker_and_never_to_a_draining_one(
    settings: Settings,
) -> None:
    plane = plane_of(settings)
    links = {
        name: worker(name, cores, plane=plane)[0] for name, cores in (("a", 1), ("b", 2), ("c", 1))
    }
    for link in links.values():
        plane.attach(link)
    plane.drain("c")
    try:
        placed = [(await plane.open(RoomId(f"iv_{n}"))).link.name for n in range(6)]
        # rooms per core: b has two cores, so it takes two rooms for each one a takes
        assert sorted(placed) == ["a", "a", "b", "b", "b", "b"]
        assert "c" not in placed
        again = await plane.open(RoomId("iv_0"))  # a room already on stays where it is
        assert again.link.name == placed[0]
    finally:
        await plane.close()


async def test_a_room_waits_for_a_worker_to_join_rather_than_failing_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_plane, "WORKER_WAIT_SECONDS", 5.0)
    plane = plane_of(settings)
    try:
        opening = asyncio.ensure_future(plane.open(RoomId("iv_1")))
        await asyncio.sleep(0.2)
        assert not opening.done()
        link, sent = worker("late", plane=plane)
        plane.attach(link)
        handle = await opening
        assert handle.link is link
        assert [type(message) for message in sent] == [p.PlaceRoom]
    finally:
        await plane.close()


async def test_with_no_worker_at_all_a_join_is_told_to_try_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_plane, "WORKER_WAIT_SECONDS", 0.2)
    plane = plane_of(settings)
    with pytest.raises(MediaUnavailable) as refused:
        await plane.open(RoomId("iv_1"))
    assert refused.value.status == 503 and "try again" in refused.value.message


async def test_a_worker_silent_for_five_seconds_is_lost_and_its_rooms_move(
    settings: Settings,
) -> None:
    lost = Lost()
    plane = plane_of(settings, lost)
    clock = Clock()
    silent, _ = worker("silent", clock=clock, plane=plane)
    talking, _ = worker("talking", clock=clock, plane=plane)
    plane.attach(silent)
    plane.attach(talking)
    heard: list[RoomItem] = []
    try:
        room = await plane.open(RoomId("iv_1"))
        plane.listen(room.id, heard.append)
        on = room.link
        other = talking if on is silent else silent
        pending = asyncio.ensure_future(room.leave(Seat.APPLICANT))
        await asyncio.sleep(0)
        clock.now += media_plane.DEAD_AFTER_SECONDS - 1
        plane.handle(other, p.Load(rooms=0, participants=0, cpu=0.0))
        await asyncio.sleep(media_plane.LOAD_SECONDS)
        assert on.alive and not lost.rooms  # not silent long enough yet
        clock.now += 2
        plane.handle(other, p.Load(rooms=0, participants=0, cpu=0.0))
        await asyncio.sleep(media_plane.LOAD_SECONDS)
        assert not on.alive and lost.rooms == [(room.id, on.name)]
        assert room.closed and plane.current(room.id) is None
        assert [item for item in heard if isinstance(item, MediaMoved)] == [MediaMoved()]
        with pytest.raises(MediaUnavailable):
            await pending  # a request the lost worker never answered
        assert (await plane.open(room.id)).link is other  # placed again, on the live one
    finally:
        await plane.close()


async def test_a_worker_that_reports_draining_takes_no_new_rooms(settings: Settings) -> None:
    """A worker asked to stop (SIGTERM, a deploy) says so in its load report."""
    plane = plane_of(settings)
    stopping, _ = worker("stopping", cores=4, plane=plane)
    staying, _ = worker("staying", plane=plane)
    plane.attach(stopping)
    plane.attach(staying)
    try:
        plane.handle(stopping, p.Load(rooms=0, participants=0, cpu=0.0, draining=True))
        placed = {(await plane.open(RoomId(f"iv_{n}"))).link.name for n in range(3)}
        assert placed == {"staying"}
    finally:
        await plane.close()
