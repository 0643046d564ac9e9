"""Small in-memory fakes and helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import argon2
import msgspec
import pyotp
from aiohttp import ClientResponse, CookieJar, DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from common.names import Agency
from common.secret import Secret
from server import operator
from server.appkeys import STORE
from server.auth import Passwords
from server.importer import ApplicationRow
from server.settings import Settings
from server.store import Store
from server.types import ApplicationType, InterviewId, InterviewMode, Program

Client = TestClient[web.Request, web.Application]


class FakeClock:
    """A clock the test moves by hand (TOTP steps, lockouts and windows follow it)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def fast_passwords() -> Passwords:
    """Real argon2id with the cheapest parameters, so tests sign in quickly."""
    return Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def application(app_id: str = "NX-0001", **changes: object) -> ApplicationRow:
    fields: dict[str, object] = {
        "id": app_id,
        "program": Program.NEXUS,
        "application_type": ApplicationType.NEW,
        "surname": "Tremblay",
        "given_names": "Émilie",
        "date_of_birth": date(1980, 5, 17),
        "citizenship": "CAN",
        "email": "emilie@example.org",
        "applied_on": date(2022, 6, 1),
        "card_expiry": None,
    }
    fields.update(changes)
    return msgspec.convert(fields, ApplicationRow, strict=False)


async def add_applications(store: Store, *rows: ApplicationRow) -> None:
    await store.applications.import_rows([(r.id, r.values()) for r in rows], actor="test")


@dataclass
class Account:
    username: str
    password: Secret[str]
    totp_secret: Secret[str]


@dataclass
class Session:
    """A signed-in (or anonymous) browser session, replayable: the encrypted cookie and
    its CSRF token."""

    cookie: str
    csrf: str
    label: str = ""


@dataclass
class World:
    """A running interview server on 127.0.0.1 with helpers to act as each kind of user."""

    server: TestServer
    settings: Settings
    clock: FakeClock
    passwords: Passwords
    clients: list[Client] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.server.app[STORE]

    async def client(self, replay: Session | None = None) -> Client:
        """A browser: keeps its cookies, or replays ``replay`` on every request unchanged."""
        if replay is None:
            jar: CookieJar | DummyCookieJar = CookieJar(
                unsafe=True, treat_as_secure_origin=[str(self.server.make_url("/"))]
            )
            headers = {}
        else:
            jar = DummyCookieJar()
            headers = {"Cookie": f"nexus_session={replay.cookie}", "X-CSRF-Token": replay.csrf}
        client: Client = TestClient(self.server, cookie_jar=jar, headers=headers)
        await client.start_server()
        self.clients.append(client)
        return client

    async def add_officer(self, username: str, agency: Agency) -> Account:
        password = Secret(f"{username}-password-long")
        enrolment = await operator.add_officer(
            self.store, self.passwords, username, username.title(), agency, None, password
        )
        return Account(username, password, enrolment.totp_secret)

    async def add_auditor(self, username: str) -> Account:
        password = Secret(f"{username}-password-long")
        enrolment = await operator.add_auditor(
            self.store, self.passwords, username, "Auditor", "Audit", password
        )
        return Account(username, password, enrolment.totp_secret)

    async def add_operator(self, username: str) -> Account:
        password = Secret(f"{username}-password-long")
        enrolment = await operator.add_operator(
            self.store, self.passwords, username, username.title(), password
        )
        return Account(username, password, enrolment.totp_secret)

    async def invite(
        self, app_id: str, mode: InterviewMode = InterviewMode.JOINT, hours: int = 8
    ) -> tuple[InterviewId, str]:
        """Schedule an interview open from now; returns its id and the link's token."""
        invitation = await operator.invite(
            self.store, self.settings, app_id, mode, self.clock() - timedelta(minutes=1), hours
        )
        token = invitation.link.reveal().rsplit("/", 1)[1]
        return invitation.interview_id, token

    async def csrf(self, client: Client) -> str:
        response = await client.get("/api/session")
        token: str = (await response.json())["csrf_token"]
        return token

    async def sign_in(
        self, client: Client, account: Account, code: str | None = None, csrf: str | None = None
    ) -> ClientResponse:
        """Post the sign-in form (with ``csrf`` if the page gave one, else the interview
        server's); the clock then moves to the next TOTP step, so the same account can
        sign in again in the same test."""
        csrf = csrf or await self.csrf(client)
        code = code or pyotp.TOTP(account.totp_secret.reveal()).at(self.clock())
        response = await client.post(
            "/login",
            data={
                "csrf_token": csrf,
                "username": account.username,
                "password": account.password.reveal(),
                "code": code,
            },
            allow_redirects=False,
        )
        self.clock.advance(30)
        return response

    async def confirm_dob(self, client: Client, token: str, dob: str) -> ClientResponse:
        csrf = await self.csrf(client)
        return await client.post(
            f"/i/{token}",
            data={"csrf_token": csrf, "date_of_birth": dob},
            allow_redirects=False,
        )

    async def session_of_anonymous(self) -> Session:
        return await self.session_of(await self.client())

    async def session_of(self, client: Client) -> Session:
        csrf = await self.csrf(client)
        cookie = client.session.cookie_jar.filter_cookies(self.server.make_url("/"))
        return Session(cookie["nexus_session"].value, csrf)


def session_cookie_attributes(response: ClientResponse) -> dict[str, str]:
    header = next(v for v in response.headers.getall("Set-Cookie") if "nexus_session=" in v)
    attributes = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def error_message(body: dict[str, dict[str, str]]) -> str:
    return body["error"]["message"]


def nexus_interview(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `nexus-interview` command as an operator would."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("nexus-interview")), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def jpeg_image(width: int = 64, height: int = 48) -> bytes:
    """A real JPEG (PyAV's MJPEG encoder), as a browser's canvas would send."""
    import av

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    frame = av.VideoFrame(width, height, "yuvj420p")
    for plane in frame.planes:
        plane.update(bytes([128]) * plane.buffer_size)
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])
