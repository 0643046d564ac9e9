"""`kill -9` of the whole interview server mid-interview: the session record it leaves
verifies as incomplete, naming its last good checkpoint, and export recovers every
participant's media up to about the last second.

A real `nexus-interview serve` process (recipients configured, nothing mocked) with three
aiortc participants over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pyotp
import pytest
from yarl import URL

from recordings.export import export_session
from recordings.keys import Identity, read_identity_file, write_identity_file
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server import operator
from server.secret import Secret
from server.session_records import checkpoint_signer
from server.settings import Settings, load_settings
from server.store import Store
from server.types import Agency, InterviewMode, utc_now
from signalling import messages as m
from signalling.address_policy import EVERY_NETWORK
from signalling.types import Kind, Seat

from .fakes import add_applications, application, fast_passwords
from .media import SyntheticParticipant, wait_for

FRAMES_PER_SECOND = 30
LOST_AT_MOST = int(1.5 * FRAMES_PER_SECOND)  # "about one second", with scheduling slack


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Browser:
    """A cookie-keeping HTTP client with the session's CSRF token, and its socket."""

    def __init__(self, base: URL) -> None:
        self.base = base
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[str(base)])
        self.http = aiohttp.ClientSession(base_url=base, cookie_jar=jar)
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def csrf(self) -> dict[str, str]:
        async with self.http.get("/api/session") as response:
            return {"X-CSRF-Token": (await response.json())["csrf_token"]}

    async def form(self, path: str, fields: dict[str, str]) -> int:
        token = (await self.csrf())["X-CSRF-Token"]
        async with self.http.post(
            path, data={"csrf_token": token, **fields}, allow_redirects=False
        ) as response:
            return response.status

    async def post(self, path: str, body: object) -> int:
        async with self.http.post(path, json=body, headers=await self.csrf()) as response:
            return response.status

    async def call(self, interview_id: str, person: SyntheticParticipant) -> None:
        self.ws = ws = await self.http.ws_connect("/ws")
        await ws.send_str(m.encode(m.Join(interview_id=interview_id)))
        assert isinstance(m.decode_server(await ws.receive_str(timeout=10)), m.Joined)

        async def offer(seat: Seat, sdp: str) -> str:
            await ws.send_str(m.encode(m.Offer(sdp=sdp)))
            while True:
                reply = m.decode_server(await ws.receive_str(timeout=10))
                if isinstance(reply, m.Answer):
                    return reply.sdp
                assert not isinstance(reply, m.Error), reply

        await person.connect(offer)

    async def close(self) -> None:
        await self.http.close()


@dataclass
class Scene:
    settings: Settings
    interview_id: str
    token: str
    keys: dict[str, Path]
    totp: dict[Agency, str] = field(default_factory=dict)


def password(agency: Agency) -> Secret[str]:
    return Secret(f"{agency.lower()}-officer-password")


@pytest.fixture
async def scene(tmp_path: Path) -> Scene:
    """A data directory with an application, two officers and an invitation, and the
    agencies' identity files outside it."""
    keys = {}
    recipients = {}
    for holder in ("cbsa", "cbp", "audit"):
        identity = Identity.generate()
        keys[holder] = tmp_path / "agencies" / f"{holder}.txt"
        write_identity_file(keys[holder], identity)
        recipients[f"{holder}_recipient"] = str(identity.recipient)
    port = free_port()
    settings = load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "port": str(port),
            "host": "127.0.0.1",
            "public_url": f"http://127.0.0.1:{port}",
            **recipients,
        },
    )
    store = await Store(settings.database_path).open()
    try:
        await add_applications(store, application("NX-0001"))
        totp = {}
        for agency in Agency:
            enrolment = await operator.add_officer(
                store,
                fast_passwords(),
                f"{agency.lower()}.one",
                "Officer",
                agency,
                None,
                password(agency),
            )
            totp[agency] = enrolment.totp_secret.reveal()
        invitation = await operator.invite(
            store, settings, "NX-0001", InterviewMode.JOINT, utc_now(), 2
        )
    finally:
        await store.close()
    token = invitation.link.reveal().rsplit("/", 1)[1]
    return Scene(settings, invitation.interview_id, token, keys, totp)


def serve(settings: Settings, recipients_from: Scene) -> subprocess.Popen[bytes]:
    command = Path(sys.executable).with_name("nexus-interview")
    env = {
        **os.environ,
        "NEXUS_DATA_DIR": str(settings.data_dir),
        "NEXUS_HOST": "127.0.0.1",
        "NEXUS_PORT": str(settings.port),
        "NEXUS_PUBLIC_URL": settings.public_url,
        "NEXUS_CBSA_RECIPIENT": settings.cbsa_recipient,
        "NEXUS_CBP_RECIPIENT": settings.cbp_recipient,
        "NEXUS_AUDIT_RECIPIENT": settings.audit_recipient,
        "NEXUS_MEDIA_PEER_NETWORKS": EVERY_NETWORK,
    }
    return subprocess.Popen([str(command), "serve"], env=env, stderr=subprocess.PIPE)


async def up(base: URL, server: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                async with http.get(base / "healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not start")


async def test_kill_9_of_the_server_loses_at_most_about_a_second_of_media(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    server = serve(settings, scene)
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(base, server)
        for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
            browser = browsers[seat] = Browser(base)
            signed_in = await browser.form(
                "/login",
                {
                    "username": f"{agency.lower()}.one",
                    "password": password(agency).reveal(),
                    "code": pyotp.TOTP(scene.totp[agency]).now(),
                },
            )
            assert signed_in == 303
            assert await browser.post(f"/api/interviews/{scene.interview_id}/take", {}) == 200
        applicant = browsers[Seat.APPLICANT] = Browser(base)
        assert await applicant.form(f"/i/{scene.token}", {"date_of_birth": "1980-05-17"}) == 303
        consent = {"text_version": "2026-11-01", "language": "en"}
        assert await applicant.post("/api/applicant/consent", consent) == 201
        for seat in Seat:
            await browsers[seat].call(scene.interview_id, people[seat])
        await wait_for(
            lambda: people[Seat.CBSA].got(Seat.APPLICANT, Kind.VIDEO).frames >= 90, within=30
        )
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        # what the others had received from each seat when the server died
        delivered = {
            seat: max(
                people[other].got(seat, Kind.VIDEO).frames for other in Seat if other is not seat
            )
            for seat in Seat
        }
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()

    session = settings.data_dir / "records" / scene.interview_id
    verifier = NoteVerifier.parse(
        checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    )
    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert not result.ok and not result.complete
    assert any("incomplete" in p and "last good checkpoint" in p for p in result.problems), (
        result.problems
    )
    exported = await asyncio.to_thread(
        export_session, session, read_identity_file(scene.keys["audit"]), session.parent / "out"
    )
    recovered = {Seat(item.seat): item for item in exported}
    for seat in Seat:
        assert recovered[seat].recovered_from_crash
        print(seat, "delivered", delivered[seat], "recovered", recovered[seat].video_frames)
        assert recovered[seat].video_frames >= delivered[seat] - LOST_AT_MOST, (
            seat,
            recovered[seat].video_frames,
            delivered[seat],
        )
