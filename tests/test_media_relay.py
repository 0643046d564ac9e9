"""A media worker that browsers cannot reach directly relays through TURN itself
(`NEXUS_MEDIA_TURN`), and the call goes through the relay.

Three machines on one switch (tests/netns.py): ``server`` runs `nexus-interview serve`
(media in its process) behind a firewall (nftables, in its namespace) that lets UDP in and
out only to and from ``turn``; ``turn`` runs coturn as `nexus-interview turn-config
--public-peers` configures it; ``clients`` holds the three participants, aiortc peers over
the socket protocol with no TURN of their own (they ignore the `iceServers` they are
sent). The only way their media can take is from their host candidates to the relay
candidate the server's connection gathered on ``turn``. With the setting off, the same
firewall lets no media through: the relay is what carried it. And the relay so
configured reaches public addresses, but none of the private or reserved ones it denies.

The test network is private, which `--public-peers` denies; the ``clients`` machine
stands in for the public Internet, so it is allowed as the media workers are (a browser's
public address passes the denials)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aioice.turn import TurnClientUdpProtocol
from aiortc.sdp import SessionDescription
from yarl import URL

from common.names import Kind, Seat
from common.secret import Secret
from server.turn import mint
from signalling import messages as m

from .coturn import listening, permission_codes, turn_config
from .media import SyntheticParticipant, wait_for
from .netns import Machine, NamespaceThread, Network, in_namespace
from .served import Browser, Scene, all_see_all, call_started, make_scenes, stop, up

SECRET = "media-relay-test-secret-" + os.urandom(16).hex()
REALM = "turn.nexus.test"
PORT = 8080
FRAMES = 30
COMMAND = str(Path(sys.executable).with_name("nexus-interview"))


@dataclass
class Site:
    network: Network
    server: Machine
    turn: Machine
    clients: NamespaceThread
    coturn_log: Path
    scenes: list[Scene]  # one interview per test, each with officers of its own
    directory: Path


def _udp_only_with(server: Machine, turn: Machine) -> None:
    """The server's firewall: UDP in and out only to and from the relay; TCP (pages,
    sockets) as usual."""
    rules = f"""
table inet server {{
  chain input {{
    type filter hook input priority 0; policy accept;
    iif "lo" accept
    meta l4proto udp ip saddr {turn.address} accept
    meta l4proto udp drop
  }}
  chain output {{
    type filter hook output priority 0; policy accept;
    oif "lo" accept
    meta l4proto udp ip daddr {turn.address} accept
    meta l4proto udp drop
  }}
}}
"""
    result = server.run(["nft", "-f", "-"], input=rules)
    assert result.returncode == 0, result.stderr


def _start_coturn(turn: Machine, clients: Machine, directory: Path) -> Path:
    """coturn on ``turn`` (3478, UDP and TCP), configured for media workers that relay:
    public peers, and ``clients`` allowed explicitly; returns its log."""
    config = directory / "turnserver.conf"
    config.write_text(
        turn_config(
            SECRET,
            *("--realm", REALM, "--media-peers", clients.address),
            *("--listening-ip", turn.address, "--public-peers"),
        )
    )
    log = directory / "coturn.log"
    command = ["stdbuf", "-oL", "turnserver", "-c", str(config)]  # line-buffered log
    # Verbose, for this test only: coturn then logs each allocation and permission with
    # its username as it is made (never a password); quiet, it logs no open session.
    command.append("--verbose")
    command += ["--pidfile", str(directory / "turnserver.pid"), "--db", str(directory / "db")]
    with open(log, "wb") as out:
        turn.popen(command, stdout=out, stderr=subprocess.STDOUT)
    return log


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for tool in ("turnserver", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"these tests need {tool}: install Debian's coturn and nftables")
    directory = tmp_path_factory.mktemp("media-relay")
    with Network() as network:
        server, turn = network.machine("server"), network.machine("turn")
        clients = network.machine("clients")
        scenes = asyncio.run(make_scenes(directory, 2, server.address, PORT, "server"))
        log = _start_coturn(turn, clients, directory)
        in_namespace(clients, listening, turn.address, 3478, 10)
        _udp_only_with(server, turn)
        thread = clients.thread()
        try:
            yield Site(network, server, turn, thread, log, scenes, directory)
        finally:
            thread.close()


def _serve(site: Site, scene: Scene, media_turn: bool) -> subprocess.Popen[bytes]:
    settings = scene.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")},
        "NEXUS_DATA_DIR": str(settings.data_dir),
        "NEXUS_HOST": site.server.address,
        "NEXUS_PORT": str(PORT),
        "NEXUS_PUBLIC_URL": settings.public_url,
        "NEXUS_CBSA_RECIPIENT": settings.cbsa_recipient,
        "NEXUS_CBP_RECIPIENT": settings.cbp_recipient,
        "NEXUS_AUDIT_RECIPIENT": settings.audit_recipient,
        "NEXUS_MEDIA_WORKERS": "0",
        # Every machine here has a private address: the media must accept them as peers.
        "NEXUS_MEDIA_PEER_NETWORKS": str(site.network.subnet),
        # UDP first: aiortc, in the server, relays through the first URL it can use.
        "NEXUS_TURN_URLS": f"turn:{site.turn.address}:3478?transport=udp,"
        f"turn:{site.turn.address}:3478?transport=tcp",
        "NEXUS_TURN_SECRET": SECRET,
        "NEXUS_MEDIA_TURN": "true" if media_turn else "false",
    }
    with open(site.directory / "server.log", "ab") as log:
        process = site.server.popen([COMMAND, "serve"], env=env, stderr=log)
    site.clients.submit(up(settings, process)).result(timeout=60)
    return process


async def _join(browser: Browser, interview_id: str, person: SyntheticParticipant) -> str:
    """Join the call and connect ``person``, with no TURN of their own whatever the
    server offers; the server's SDP answer."""
    ws = await browser.socket()
    await ws.send_str(m.encode(m.Join(interview_id=interview_id)))
    joined = await browser.expect(m.Joined)
    assert isinstance(joined, m.Joined)
    answers: list[str] = []

    async def offer(seat: Seat, sdp: str) -> str:
        await ws.send_str(m.encode(m.Offer(sdp=sdp)))
        answer = await browser.expect(m.Answer)
        assert isinstance(answer, m.Answer)
        answers.append(answer.sdp)
        return answer.sdp

    await person.connect(offer)
    return answers[0]


@dataclass
class Outcome:
    answers: dict[Seat, str]
    frames: dict[Seat, int]  # video frames each seat received from the others
    states: dict[Seat, str]  # each participant's connection state at the end


async def _call(scene: Scene, team: str, until: str) -> Outcome:
    """Everyone joins the interview's call from ``clients``; returns once every seat sees
    every other seat's video (``until`` "media") or every connection failed ("failed")."""
    browsers = await call_started(scene, URL(scene.settings.public_url), team)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        answers = {
            seat: await _join(browsers[seat], scene.interview_id, people[seat]) for seat in Seat
        }
        if until == "media":
            await wait_for(lambda: all_see_all(people, FRAMES), within=90)
        else:
            await wait_for(lambda: all(_state(p) == "failed" for p in people.values()), 120)
        frames = {
            seat: sum(people[seat].got(other, Kind.VIDEO).frames for other in Seat) for seat in Seat
        }
        return Outcome(answers, frames, {seat: _state(people[seat]) for seat in Seat})
    finally:
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()


def _state(person: SyntheticParticipant) -> str:
    return str(person.pc.connectionState) if person.pc is not None else "closed"


def _relay_candidates(sdp: str) -> list[str]:
    """The addresses of the answer's ``typ relay`` candidates."""
    return [
        candidate.ip
        for media in SessionDescription.parse(sdp).media
        for candidate in media.ice_candidates
        if candidate.type == "relay"
    ]


def test_a_media_worker_reachable_only_through_the_relay_carries_the_call(site: Site) -> None:
    scene = site.scenes[0]
    server = _serve(site, scene, media_turn=True)
    try:
        outcome = site.clients.submit(_call(scene, "one", until="media")).result(timeout=240)
    finally:
        stop(server)

    for seat in Seat:
        # The server's end offers a relay candidate on the turn machine ...
        assert site.turn.address in _relay_candidates(outcome.answers[seat]), seat
        # ... and each seat's media went up through it and came back down from the others.
        assert outcome.frames[seat] >= 2 * FRAMES, outcome.frames
        assert outcome.states[seat] == "connected"
    log = site.coturn_log.read_text("utf-8", errors="replace")
    server_log = (site.directory / "server.log").read_text("utf-8", errors="replace")
    for seat in Seat:
        # The server's end allocated with credentials of its own, named for the seat ...
        who = f"{scene.interview_id}-{seat.value}-media"
        allocated = re.search(
            rf"user <(\d+:{who})>: incoming packet ALLOCATE processed, success", log
        )
        assert allocated is not None, seat
        # ... and neither their password nor the secret shows in either log.
        # The relay opened its way to a participant for the server's end.
        opened = rf"user <{allocated.group(1)}>: incoming packet CHANNEL_BIND processed, success"
        assert re.search(opened, log) is not None, seat
        username = allocated.group(1).encode()
        password = base64.b64encode(hmac.new(SECRET.encode(), username, hashlib.sha1).digest())
        assert password.decode() not in log and password.decode() not in server_log
    assert SECRET not in log and SECRET not in server_log


def test_without_media_turn_the_same_firewall_lets_no_media_through(site: Site) -> None:
    scene = site.scenes[1]
    server = _serve(site, scene, media_turn=False)
    try:
        outcome = site.clients.submit(_call(scene, "two", until="failed")).result(timeout=240)
    finally:
        stop(server)

    assert all(_relay_candidates(sdp) == [] for sdp in outcome.answers.values())
    assert outcome.frames == dict.fromkeys(Seat, 0)
    assert f"{scene.interview_id}-applicant-media" not in site.coturn_log.read_text("utf-8")


async def _permissions(turn: Machine, peers: list[str]) -> dict[str, int | None]:
    """Per peer address, the error code of a CreatePermission (None: granted), on one
    allocation made with credentials minted as the server mints a media worker's."""
    credential = mint(Secret(SECRET), "iv_0123456789abcdef-cbsa-media", datetime.now(UTC), 600)
    server = (turn.address, 3478)
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server,
            username=credential.username,
            password=credential.password.reveal(),
            lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=server,
    )
    await protocol.connect()
    return await permission_codes(protocol, peers, 9)


def test_public_peers_reach_public_addresses_and_the_listed_ones_but_no_private_one(
    site: Site,
) -> None:
    # The relay has an IPv4 address only: its allocations reach IPv4 peers alone.
    allowed = [site.network.machines["clients"].address, "8.8.8.8", "1.1.1.1"]
    never = [
        site.server.address,  # private and not listed
        "127.0.0.1",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
    ]

    codes = site.clients.submit(_permissions(site.turn, allowed + never)).result(timeout=60)

    assert {peer: codes[peer] for peer in allowed} == dict.fromkeys(allowed)
    assert {peer: codes[peer] for peer in never} == dict.fromkeys(never, 403)
