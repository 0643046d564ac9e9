"""A real `nexus-interview serve` process and the people who use it, shared by the tests
that start one: the data directory's interviews and officers (`make_scenes`), the
server's start and stop, a cookie-keeping browser, and a call brought to the point where
everyone receives everyone's video."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from yarl import URL

from common.names import Agency, Kind, Seat
from common.secret import Secret
from media.address_policy import EVERY_NETWORK
from recordings.keys import Identity, write_identity_file
from recordings.tlog import NoteVerifier
from server import operator
from server.session_records import checkpoint_signer
from server.settings import Settings, load_settings
from server.store import Store
from server.types import InterviewMode, utc_now
from server.views.applicant import CONSENT_VERSION
from signalling import messages as m

from .fakes import add_applications, application, fast_passwords
from .media import SyntheticParticipant, wait_for

FRAMES_PER_SECOND = 30
# The officers of the first, second, ... interview: cbsa.<team>, cbp.<team>.
TEAMS = ("one", "two", "three", "four")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Browser:
    """A cookie-keeping HTTP client with the session's CSRF token, and its socket."""

    def __init__(self, base: URL, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: how an https ``base`` is trusted (a test CA's client context)."""
        self.base = base
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[str(base)])
        connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
        self.http = aiohttp.ClientSession(base_url=base, cookie_jar=jar, connector=connector)
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

    async def post(self, path: str, body: object) -> tuple[int, Any]:
        async with self.http.post(path, json=body, headers=await self.csrf()) as response:
            return response.status, await response.json()

    async def socket(self) -> aiohttp.ClientWebSocketResponse:
        """A new socket (the one before, if any, closed: a page reloaded)."""
        if self.ws is not None:
            await self.ws.close()
        self.ws = await self.http.ws_connect("/ws")
        return self.ws

    async def expect(self, kind: type[m.Message]) -> m.Message:
        """The next message of ``kind``, past what the lobby and the room say meanwhile;
        an error fails the test."""
        assert self.ws is not None
        while True:
            message = m.decode_server(await self.ws.receive_str(timeout=10))
            assert not isinstance(message, m.Error), message
            if isinstance(message, kind):
                return message

    async def call(self, interview_id: str, person: SyntheticParticipant) -> None:
        """Join the call on a new socket and send ``person``'s offer."""
        ws = await self.socket()
        await ws.send_str(m.encode(m.Join(interview_id=interview_id)))
        await self.expect(m.Joined)

        async def offer(seat: Seat, sdp: str) -> str:
            await ws.send_str(m.encode(m.Offer(sdp=sdp)))
            answer = await self.expect(m.Answer)
            assert isinstance(answer, m.Answer)
            return answer.sdp

        await person.connect(offer)

    async def end(self) -> None:
        """An officer's "End interview": the call ends for everyone."""
        assert self.ws is not None
        await self.ws.send_str(m.encode(m.End()))
        await self.expect(m.Ended)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
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


async def make_scenes(
    tmp_path: Path,
    count: int = 1,
    host: str = "127.0.0.1",
    port: int | None = None,
    public_host: str | None = None,
) -> list[Scene]:
    """A data directory with ``count`` applications (NX-0001, ...), each invited, each
    with officers of its own (team ``TEAMS[n]``), and the agencies' identity files outside
    it. The server is to listen on ``host``:``port`` (a free port unless given) and is
    reached at ``public_host`` (``host`` unless given)."""
    keys = {}
    recipients = {}
    for holder in ("cbsa", "cbp", "audit"):
        identity = Identity.generate()
        keys[holder] = tmp_path / "agencies" / f"{holder}.txt"
        write_identity_file(keys[holder], identity)
        recipients[f"{holder}_recipient"] = str(identity.recipient)
    port = port or free_port()
    settings = load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "port": str(port),
            "host": host,
            "public_url": f"http://{public_host or host}:{port}",
            **recipients,
        },
    )
    store = await Store(settings.database_path).open()
    made = []
    try:
        ids = [f"NX-{n + 1:04}" for n in range(count)]
        await add_applications(store, *(application(app_id) for app_id in ids))
        for app_id, team in zip(ids, TEAMS, strict=False):
            totp = {}
            for agency in Agency:
                enrolment = await operator.add_officer(
                    store,
                    fast_passwords(),
                    f"{agency.lower()}.{team}",
                    "Officer",
                    agency,
                    None,
                    password(agency),
                )
                totp[agency] = enrolment.totp_secret.reveal()
            invitation = await operator.invite(
                store, settings, app_id, InterviewMode.JOINT, utc_now(), 2
            )
            token = invitation.link.reveal().rsplit("/", 1)[1]
            made.append(Scene(settings, invitation.interview_id, token, keys, totp))
    finally:
        await store.close()
    return made


@pytest.fixture
async def scene(tmp_path: Path) -> Scene:
    """A data directory with an application, two officers (team ``one``) and an
    invitation, and the agencies' identity files outside it."""
    (made,) = await make_scenes(tmp_path)
    return made


def serve(settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    """``nexus-interview serve`` on the data directory; ``extra``: more NEXUS_ settings."""
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
        **{f"NEXUS_{name.upper()}": value for name, value in extra.items()},
    }
    # to a file, not a pipe nobody reads: a full pipe would stall the server
    with server_log(settings).open("ab") as log:
        return subprocess.Popen([str(command), "serve"], env=env, stderr=log)


def server_log(settings: Settings) -> Path:
    return settings.data_dir.parent / "server.log"


async def up(settings: Settings, server: subprocess.Popen[bytes]) -> None:
    base = URL(settings.public_url)
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            assert server.poll() is None, server_log(settings).read_text()
            try:
                async with http.get(base / "healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not start")


def kill_9(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)


def stop(server: subprocess.Popen[bytes]) -> None:
    """A clean stop (SIGTERM), as a service manager does."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def call_started(scene: Scene, base: URL, team: str = "one") -> dict[Seat, Browser]:
    """Both officers of ``team`` signed in and took the interview; the applicant checked
    in, consented and came to the waiting room, which starts the call (the applicant is
    told to join). Nobody has joined it yet."""
    browsers: dict[Seat, Browser] = {}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        browser = browsers[seat] = Browser(base)
        signed_in = await browser.form(
            "/login",
            {
                "username": f"{agency.lower()}.{team}",
                "password": password(agency).reveal(),
                "code": pyotp.TOTP(scene.totp[agency]).now(),
            },
        )
        assert signed_in == 303
        taken, body = await browser.post(f"/api/interviews/{scene.interview_id}/take", {})
        assert taken == 200, body
    applicant = browsers[Seat.APPLICANT] = Browser(base)
    assert await applicant.form(f"/i/{scene.token}", {"date_of_birth": "1980-05-17"}) == 303
    consent = {"text_version": CONSENT_VERSION, "language": "en"}
    consented, body = await applicant.post("/api/applicant/consent", consent)
    assert consented == 201, body
    ws = await applicant.socket()
    await ws.send_str(m.encode(m.Ready(interview_id=scene.interview_id)))
    await applicant.expect(m.Paired)
    return browsers


def all_see_all(people: dict[Seat, SyntheticParticipant], frames: int) -> bool:
    """Every seat has received ``frames`` of every other seat's video."""
    return all(
        people[seat].got(other, Kind.VIDEO).frames >= frames
        for seat in Seat
        for other in Seat
        if other is not seat
    )


async def everyone_in_call(
    scene: Scene, browsers: dict[Seat, Browser], people: dict[Seat, SyntheticParticipant]
) -> None:
    """Each seat joins on a new socket and sends its offer; returns once every seat
    receives every other seat's video."""
    for seat in Seat:
        await browsers[seat].call(scene.interview_id, people[seat])
    await wait_for(lambda: all_see_all(people, FRAMES_PER_SECOND), within=30)


def journal(session: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]


def server_verifier(settings: Settings) -> NoteVerifier:
    return NoteVerifier.parse(
        checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    )
