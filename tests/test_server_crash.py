"""`kill -9` of the whole interview server mid-interview: the session record it leaves
verifies as incomplete, naming its last good checkpoint, and export recovers every
participant's media up to about the last second. Started again on the same data
directory, the server resumes the interview: the outage is in its record, the
participants rejoin and finish it, and the record verifies; a call nobody comes back to
is marked interrupted.

A real `nexus-interview serve` process (recipients configured, nothing mocked) with three
aiortc participants over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from yarl import URL

from common.names import Agency, Kind, Seat
from common.secret import Secret
from media.address_policy import EVERY_NETWORK
from recordings.export import export_session
from recordings.keys import Identity, read_identity_file, write_identity_file
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server import operator
from server.session_records import checkpoint_signer
from server.settings import Settings, load_settings
from server.store import Store
from server.types import ApplicationStatus, InterviewMode, InterviewState, utc_now
from server.views.applicant import CONSENT_VERSION
from signalling import messages as m

from .fakes import add_applications, application, fast_passwords
from .media import SyntheticParticipant, wait_for

FRAMES_PER_SECOND = 30
LOST_AT_MOST = int(1.5 * FRAMES_PER_SECOND)  # "about one second", with scheduling slack
OUTAGE_WAIT_SECONDS = 2
COMINGS = frozenset({"join", "rejoin"})  # a seat's events as it comes into the call


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


async def call_started(scene: Scene, base: URL) -> dict[Seat, Browser]:
    """Both officers signed in and took the interview; the applicant checked in,
    consented and came to the waiting room, which starts the call (the applicant is told
    to join). Nobody has joined it yet."""
    browsers: dict[Seat, Browser] = {}
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


async def everyone_in_call(
    scene: Scene, browsers: dict[Seat, Browser], people: dict[Seat, SyntheticParticipant]
) -> None:
    """Each seat joins on a new socket and sends its offer; returns once every seat
    receives every other seat's video."""
    for seat in Seat:
        await browsers[seat].call(scene.interview_id, people[seat])
    await wait_for(
        lambda: all(
            people[seat].got(other, Kind.VIDEO).frames >= FRAMES_PER_SECOND
            for seat in Seat
            for other in Seat
            if other is not seat
        ),
        within=30,
    )


def journal(session: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]


def server_verifier(settings: Settings) -> NoteVerifier:
    return NoteVerifier.parse(
        checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    )


async def test_kill_9_of_the_server_loses_at_most_about_a_second_of_media(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    server = serve(settings)
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, people)
        await wait_for(
            lambda: people[Seat.CBSA].got(Seat.APPLICANT, Kind.VIDEO).frames >= 90, within=30
        )
        kill_9(server)
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
    result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
    assert not result.ok and not result.complete
    # Cut off mid-session: not closed, its last events perhaps past the last checkpoint
    # (the media's progress is written as it comes); never altered.
    assert any(
        "incomplete" in p and ("has not closed" in p or "without a final checkpoint" in p)
        for p in result.problems
    ), result.problems
    assert not any("altered" in p for p in result.problems), result.problems
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


async def test_after_a_kill_9_the_interview_resumes_records_the_outage_and_verifies(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    session = settings.data_dir / "records" / scene.interview_id
    server = serve(settings)
    browsers: dict[Seat, Browser] = {}
    before = {seat: SyntheticParticipant(seat) for seat in Seat}
    after = {seat: SyntheticParticipant(seat) for seat in Seat}
    decided: dict[Agency, Any] = {}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, before)
        kill_9(server)
        media_at_the_crash = {path.name for path in session.glob("*.webm.age")}
        for person in before.values():
            await person.close()

        server = serve(settings)  # same data directory, same address
        await up(settings, server)
        # each page reconnects: a new socket on the same sign-in, a join, a new offer
        await everyone_in_call(scene, browsers, after)
        await browsers[Seat.CBSA].end()
        verdict = {"verdict": "approve", "reason_codes": [], "notes": ""}
        for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
            status, decided[agency] = await browsers[seat].post(
                f"/api/interviews/{scene.interview_id}/decision", verdict
            )
            assert status == 201, decided[agency]
    finally:
        stop(server)
        for person in [*before.values(), *after.values()]:
            await person.close()
        for browser in browsers.values():
            await browser.close()

    # the restarted server stopped cleanly: no traceback, no Python warning
    log = server_log(settings).read_text()
    assert "Traceback" not in log and "Warning:" not in log, log
    assert decided[Agency.CBP]["application_status"] == ApplicationStatus.APPROVED
    result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
    # closed, but given no witness key: nobody outside the server vouches for its length
    assert result.closed and not result.failed, result.problems

    events = journal(session)
    kinds = [event["kind"] for event in events]
    outage_at = kinds.index("outage")
    outage = events[outage_at]
    assert outage["seconds"] > 0, outage
    comings = [(e["kind"], e.get("seat")) for e in events[outage_at:] if e["kind"] in COMINGS]
    assert sorted(comings) == sorted(("rejoin", seat.value) for seat in Seat), comings

    segments = {event["file"]: event for event in events if event["kind"] == "segment"}
    on_disk = {path.name for path in session.glob("*.webm.age")}
    assert media_at_the_crash and media_at_the_crash < on_disk
    assert on_disk == set(segments), on_disk ^ set(segments)
    named_before = {e["file"] for e in events[:outage_at] if "file" in e and not e.get("recovered")}
    cut_off = media_at_the_crash - named_before  # being written when the server died
    assert {segments[name]["seat"] for name in cut_off} == {seat.value for seat in Seat}
    assert all(segments[name].get("recovered") is True for name in cut_off)
    assert set(outage["recovered_files"]) == cut_off

    store = await Store(settings.database_path).open()
    try:
        application_now = await store.applications.get("NX-0001")
        interview = await store.interviews.get(scene.interview_id)
    finally:
        await store.close()
    assert application_now.status is ApplicationStatus.APPROVED
    assert interview.state is InterviewState.COMPLETED


async def test_a_call_nobody_comes_back_to_after_a_kill_9_is_marked_interrupted(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    session = settings.data_dir / "records" / scene.interview_id
    wait = dict(outage_wait_seconds=str(OUTAGE_WAIT_SECONDS))
    server = serve(settings, **wait)
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, people)
        kill_9(server)
        server = serve(settings, **wait)
        await up(settings, server)
        await wait_for(
            lambda: "interrupted" in {e["kind"] for e in journal(session)},
            within=OUTAGE_WAIT_SECONDS + 30,
        )
    finally:
        stop(server)
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()

    events = journal(session)
    outage = next(e for e in events if e["kind"] == "outage")
    interrupted = next(e for e in events if e["kind"] == "interrupted")
    waited = datetime.fromisoformat(interrupted["at"]) - datetime.fromisoformat(outage["at"])
    assert waited.total_seconds() >= OUTAGE_WAIT_SECONDS - 0.5, waited
    assert not {e["kind"] for e in events[events.index(outage) :]} & COMINGS
    store = await Store(settings.database_path).open()
    try:
        interview = await store.interviews.get(scene.interview_id)
    finally:
        await store.close()
    assert interview.state is InterviewState.INTERRUPTED
    result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
    assert result.closed and not result.failed, result.problems  # no witness key given
