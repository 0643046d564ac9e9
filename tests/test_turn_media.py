"""The media workers' own TURN relays (`NEXUS_MEDIA_TURN`), without a TURN server: the
setting's checks, the credentials the control plane mints for each connection and sends in
the worker's `Offer` (only when the setting is on), the worker's connection configured
with them, no credential in any log, and `turn-config --public-peers`, which lets the relay
reach the browsers. tests/test_media_relay.py runs it all through a real coturn."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from aiortc import RTCIceServer

from common.errors import SettingError
from common.names import RoomId, Seat
from common.secret import Secret
from media import protocol as p
from media.address_policy import EVERY_NETWORK
from media.interview import InterviewRoom
from server.appkeys import ROOMS
from server.cli import main
from server.settings import Settings, load_settings
from server.turn import coturn_config, media_relays, parse_media_peers
from server.worker_links import WorkerLink
from signalling import messages as m

from .calls import join, seated_interview
from .fakes import World
from .media import SyntheticParticipant

SECRET = "m" * 40
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
# The browsers' order: TLS on 443 first, for the networks that allow nothing else.
URLS = (
    "turns:turn.example.org:443?transport=tcp,turn:turn.example.org:3478?transport=tcp,"
    "turn:turn.example.org:3478?transport=udp"
)
TURN_ENV = {"NEXUS_TURN_URLS": URLS, "NEXUS_TURN_SECRET": SECRET}


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """TURN configured; the media workers relay too unless the test's parameter is
    ``"false"``."""
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "media_peer_networks": EVERY_NETWORK,
        "media_workers": "0",
        "media_turn": getattr(request, "param", "true"),
    }
    return load_settings(TURN_ENV, overrides)


def _minted_for(relay: p.Relay, who: str) -> bool:
    """``relay``'s credential is one coturn accepts for ``who``, minted with the secret."""
    expected = hmac.new(SECRET.encode(), relay.username.encode(), hashlib.sha1).digest()
    return (
        relay.username.partition(":")[2] == who
        and relay.credential == base64.b64encode(expected).decode()
    )


def test_media_turn_needs_the_turn_urls_and_secret() -> None:
    assert load_settings({}).media_turn is False
    for env in ({}, {"NEXUS_TURN_SECRET": SECRET}):
        with pytest.raises(SettingError, match="NEXUS_MEDIA_TURN needs NEXUS_TURN_URLS"):
            load_settings({**env, "NEXUS_MEDIA_TURN": "true"})
    assert load_settings({**TURN_ENV, "NEXUS_MEDIA_TURN": "on"}).media_turn is True


def test_media_relays_are_minted_only_with_media_turn_and_list_udp_first() -> None:
    off = load_settings(TURN_ENV)
    on = load_settings({**TURN_ENV, "NEXUS_MEDIA_TURN": "true"})

    assert media_relays(off, "iv_1-cbsa-media", NOW) == []
    (relay,) = media_relays(on, "iv_1-cbsa-media", NOW)
    # aiortc relays through the first URL it can use: UDP, then TCP, then TLS.
    assert relay.urls == [
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:443?transport=tcp",
    ]
    assert _minted_for(relay, "iv_1-cbsa-media")
    assert relay.username.startswith(f"{int(NOW.timestamp()) + 600}:")


def test_an_offer_without_relays_is_the_message_a_worker_before_them_reads() -> None:
    plain = p.Offer(request=1, room="iv_1", seat=Seat.CBP, sdp="v=0")
    relay = p.Relay(urls=["turn:t.example:3478"], username="1:iv_1-cbp-media", credential="pw")
    relayed = p.Offer(request=2, room="iv_1", seat=Seat.CBP, sdp="v=0", relays=[relay])

    assert "relays" not in msgspec.msgpack.decode(p.encode(plain))
    assert p.decode_to_worker(p.encode(relayed)) == relayed
    assert "pw" not in repr(relayed)
    assert "1:iv_1-cbp-media" in repr(relayed)


class CapturingWorker:
    """A worker that keeps every `Offer` it is sent and answers it with a stand-in SDP
    (any other request with `Done`)."""

    def __init__(self, world: World) -> None:
        self.plane = world.server.app[ROOMS]
        self.offers: list[p.Offer] = []
        self.wire: list[bytes] = []
        self.link = WorkerLink("capturing", self._receive, local=True)

    def _receive(self, message: p.Message) -> None:
        reply: p.ToControl
        if isinstance(message, p.Offer):
            self.wire.append(p.encode(message))
            self.offers.append(message)
            reply = p.Answered(request=message.request, sdp="v=0 answer", participant="x")
        elif isinstance(request := getattr(message, "request", None), int):
            reply = p.Done(request=request)
        else:
            return
        asyncio.get_running_loop().call_soon(self.plane.handle, self.link, reply)


async def _offers_from_every_seat(world: World) -> tuple[CapturingWorker, str]:
    """Every seat joins and offers; the calls are placed on a `CapturingWorker` (the
    server's own worker drains)."""
    worker = CapturingWorker(world)
    worker.plane.drain("in-process")
    worker.plane.attach(worker.link)
    seated, interview_id = await seated_interview(world)
    for seat in Seat:
        await join(seated[seat], interview_id)
        answer = await seated[seat].ask(m.Offer(sdp="v=0 offer"))
        assert isinstance(answer, m.Answer), answer
    return worker, interview_id


async def test_each_offer_carries_fresh_relays_of_its_own_with_media_turn(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    worker, interview_id = await _offers_from_every_seat(world)

    assert [offer.seat for offer in worker.offers] == list(Seat)
    for offer in worker.offers:
        assert isinstance(offer.relays, list) and len(offer.relays) == 1
        (relay,) = offer.relays
        assert relay.urls[0] == "turn:turn.example.org:3478?transport=udp"
        assert _minted_for(relay, f"{interview_id}-{offer.seat.value}-media")
        # The worker holds credentials for one connection, never the secret; no log shows
        # either.
        assert SECRET.encode() not in worker.wire[worker.offers.index(offer)]
        assert relay.credential not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("settings", ["false"], indirect=True)
async def test_without_media_turn_an_offer_carries_no_relays(world: World) -> None:
    worker, _ = await _offers_from_every_seat(world)

    assert len(worker.offers) == len(Seat)
    assert all(offer.relays is msgspec.UNSET for offer in worker.offers)
    assert all(b"relays" not in wire for wire in worker.wire)


def _closed_tcp_port() -> int:
    """A port nothing listens on: a TURN allocation over TCP to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_the_workers_connection_gathers_on_the_relays_its_offer_brought() -> None:
    relay = RTCIceServer(
        urls=f"turn:127.0.0.1:{_closed_tcp_port()}?transport=tcp",
        username="1:iv_1-applicant-media",
        credential="pw",
    )
    room = InterviewRoom(RoomId("iv_1"))
    relayed, plain = SyntheticParticipant(Seat.APPLICANT), SyntheticParticipant(Seat.CBSA)
    try:
        await relayed.connect(lambda seat, sdp: room.join(seat, sdp, None, [relay]))
        await plain.connect(lambda seat, sdp: room.join(seat, sdp))

        with_relay, without = room.participant(Seat.APPLICANT), room.participant(Seat.CBSA)
        assert with_relay is not None and without is not None
        assert with_relay.configuration.iceServers == [relay]
        assert without.configuration.iceServers == []
    finally:
        await relayed.close()
        await plain.close()
        await room.close()


# --- turn-config --public-peers ---------------------------------------------------------


def test_public_peers_deny_every_private_and_reserved_range_but_allow_the_media_workers() -> None:
    peers = parse_media_peers("10.0.0.5,fd00::5")

    lines = coturn_config(Secret(SECRET), "turn.example.org", peers, public_peers=True)
    lines_of = lines.splitlines()

    denied = [line.partition("=")[2] for line in lines_of if line.startswith("denied-peer-ip=")]
    for needed in (
        "10.0.0.0-10.255.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "100.64.0.0-100.127.255.255",
        "127.0.0.0-127.255.255.255",
        "169.254.0.0-169.254.255.255",  # the clouds' metadata service, 169.254.169.254
        "0.0.0.0-0.255.255.255",
        "224.0.0.0-239.255.255.255",
        "240.0.0.0-255.255.255.255",
        "::1",
        "::ffff:0:0-::ffff:ffff:ffff",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ):
        assert needed in denied
    # The public Internet is not denied: the browsers are there. coturn 4.6 takes a range
    # that starts at "::" as starting anywhere, holding every IPv4 address as well.
    assert "0.0.0.0-255.255.255.255" not in denied
    assert all(not d.startswith("::-") and d != "::" for d in denied)
    allowed = [line for line in lines_of if line.startswith("allowed-peer-ip=")]
    assert allowed == ["allowed-peer-ip=10.0.0.5", "allowed-peer-ip=fd00::5"]
    assert lines_of.index(allowed[0]) > lines_of.index(f"denied-peer-ip={denied[-1]}")
    for needed in ("no-tcp-relay", "no-multicast-peers", "use-auth-secret"):
        assert needed in lines_of
    assert "allow-loopback-peers" not in lines_of
    assert "NEXUS_MEDIA_TURN" in lines


def test_turn_config_public_peers_is_named_in_the_header(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TURN_SECRET", SECRET)
    args = ["turn-config", "--realm", "r.example", "--media-peers", "10.0.0.5"]

    assert main([*args, "--public-peers"]) == 0
    public = capsys.readouterr().out.splitlines()
    assert main(args) == 0
    only_media = capsys.readouterr().out.splitlines()

    assert public[1].endswith("--media-peers 10.0.0.5 --public-peers")
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" in public
    assert "denied-peer-ip=0.0.0.0-255.255.255.255" not in public
    assert "denied-peer-ip=0.0.0.0-255.255.255.255" in only_media
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" not in only_media
