"""The scene the attack suite plays on: the interview server as `nexus-interview serve`
runs it, five interviews, a signed-in session for every role, an account and a link to
lock; and how each kind of input is sent to it, with what counts as a failure."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import argon2
import pyotp
from aiohttp import (
    ClientError,
    ClientResponseError,
    ClientSession,
    ClientTimeout,
    ClientWebSocketResponse,
    DummyCookieJar,
    TCPConnector,
    WSMsgType,
    WSServerHandshakeError,
)
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import StrOrURL
from yarl import URL

from common.names import Agency
from common.secret import Secret
from server import serving
from server.appkeys import LIVES
from server.auth import Passwords
from server.views.applicant import CONSENT_VERSION
from signalling import messages as m

from . import attack_inputs as a
from .attack_frames import SDP_JUNK, SocketScript
from .attack_requests import HttpInput
from .calls import Seated, join, open_socket
from .fakes import Account, Session, World, add_applications, application, jpeg_image

FOREIGN_ORIGIN = "https://evil.example"
PROBE_BASE = 0xFEED_0000_0000_0000
# Closes the server may choose: normal, going away, text that is not UTF-8, a policy
# refused, a frame too big.
ORDERLY_CLOSES = {1000, 1001, 1007, 1008, 1009}
DOBS = {"A": "1980-05-17", "B": "1975-01-02", "C": "1990-12-31", "D": "1966-06-06"}


def _closes_the_socket(text: bytes) -> bool:
    """A text frame the server must answer by closing: over its size limit, or not
    UTF-8."""
    if len(text) > 4 * m.MAX_MESSAGE_BYTES:
        return True
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


class ServedServer(TestServer):
    """The app served through `serving.start`, as the `serve` command serves it (our answer
    to requests aiohttp cannot parse, our access log), behind aiohttp's test-server
    interface so that `World` and its clients can drive it."""

    async def start_server(
        self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        if self.runner is None:
            self.runner = await serving.start(self.app, self.host, 0)
            self.port = self.runner.addresses[0][1]

    def make_url(self, path: StrOrURL) -> URL:
        return URL(f"http://{self.host}:{self.port}").join(URL(path))


class CountingPasswords(Passwords):
    """Real argon2 at the cheapest cost; counts the comparisons made against each hash."""

    def __init__(self) -> None:
        super().__init__(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        self.compared: Counter[str] = Counter()
        self._lock = threading.Lock()

    def verify(self, password_hash: Secret[str], password: Secret[str]) -> bool:
        with self._lock:
            self.compared[password_hash.reveal()] += 1
        return super().verify(password_hash, password)


class LogCapture(logging.Handler):
    """Every record the root logger hands out; those at ERROR or above, or that carry a
    traceback, are kept as problems."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records = 0
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        if (
            record.levelno >= logging.ERROR
            or record.exc_info
            or record.stack_info
            or "Traceback" in record.getMessage()
        ):
            self.problems.append(self.format(record))


@dataclass
class Tally:
    """What the attack sent and what went wrong."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures.append(what[:800])


@dataclass
class Scene:
    world: World
    sessions: dict[str, Session]
    """Role -> its session (``nobody`` has none)."""
    interviews: dict[str, str]
    """Placeholder -> interview id."""
    tokens: dict[str, str]
    """Placeholder -> invitation token."""
    accounts: dict[str, Account]
    race_interview: str
    lifecycle_interview: str
    base_sdp: str
    http: ClientSession
    tally: Tally = field(default_factory=Tally)
    probes: int = 0

    @property
    def locked(self) -> Account:
        return self.accounts["cbsa.locked"]

    def fill(self, text: str) -> str:
        if "@@" not in text:
            return text
        for placeholder, value in (*self.interviews.items(), *self.tokens.items()):
            text = text.replace(placeholder, value)
        code = pyotp.TOTP(self.locked.totp_secret.reveal()).at(self.world.clock())
        text = text.replace(a.LOCKED_USER, self.locked.username)
        text = text.replace(a.LOCKED_PASSWORD, self.locked.password.reveal())
        text = text.replace(a.LOCKED_CODE, code).replace(a.RIGHT_DOB_D, DOBS["D"])
        return re.sub(re.escape(a.BASE_SDP) + r":?([0-9,-]*)", self._mutated_sdp, text)

    def _mutated_sdp(self, found: re.Match[str]) -> str:
        lines = self.base_sdp.split("\r\n")
        for op in filter(None, found.group(1).split(",")):
            line, kind, junk = (int(n) for n in op.split("-"))
            line %= len(lines)
            if kind == 0:
                del lines[line]
            elif kind == 1:
                lines[line] = lines[line][: len(lines[line]) // 2]
            else:
                lines[line] = SDP_JUNK[junk % len(SDP_JUNK)]
        return json.dumps("\r\n".join(lines))[1:-1]  # it goes inside a JSON string

    def url(self, path: str) -> URL:
        return URL(f"http://{self.world.server.host}:{self.world.server.port}{path}", encoded=True)

    def origin(self) -> str:
        return f"http://{self.world.server.host}:{self.world.server.port}"

    # --- HTTP ---------------------------------------------------------------------------

    async def send_http(self, shape: HttpInput) -> None:
        path = shape.path(self.fill)
        if shape.query:
            query = [(self.fill(k), self.fill(v)) for k, v in shape.query]
            path += "?" + urlencode(query, encoding="utf-8", errors="surrogatepass")
        for role, csrf in shape.callers:
            await self._send_as(shape, path, role, csrf)

    async def _send_as(self, shape: HttpInput, path: str, role: str, csrf: str) -> None:
        session = self.sessions.get(role)
        token = session.csrf if session else ""
        headers = [(name, self.fill(value)) for name, value in shape.headers]
        if session is not None:
            headers.append(("Cookie", f"nexus_session={session.cookie}"))
        sent_token = {"right": token, "wrong": "W" * 43, "empty": ""}.get(csrf)
        if sent_token is not None:
            headers.append(("X-CSRF-Token", sent_token))
        if shape.content_length is not None:
            headers.append(("Content-Length", shape.content_length))
        body = shape.body
        if body is not None and b"@@" in body:  # what fills them in is ASCII
            body = self.fill(body.decode("latin-1").replace(a.CSRF, token)).encode("latin-1")
        what = f"{shape.method} {path[:300]} as {role} ({csrf} CSRF), {shape!r}"
        try:
            async with self.http.request(
                shape.method, self.url(path), headers=headers, data=body, allow_redirects=False
            ) as response:
                answer = await response.read()
        except (ValueError, TypeError):
            return  # the client would not send it: nothing reached the server
        except ClientResponseError as exc:
            if shape.method == "HEAD" and "Data after" in exc.message:
                # The plain 400 for a request aiohttp cannot parse carries a body even
                # when the request was a HEAD; a client's parser then finds bytes after it.
                self.tally.sent["http"] += 1
                self.tally.statuses[400] += 1
                return
            self.tally.fail(f"no answer to {what}: {type(exc).__name__} {exc.message}")
            return
        except (ClientError, TimeoutError) as exc:
            self.tally.fail(f"no answer to {what}: {type(exc).__name__} {exc}")
            return
        self.tally.sent["http"] += 1
        self.tally.statuses[response.status] += 1
        if response.status >= 500 or b"Traceback" in answer:
            self.tally.fail(f"{response.status} for {what}: {answer[:300]!r}")

    # --- WebSocket ----------------------------------------------------------------------

    def socket_headers(self, role: str, origin: str) -> dict[str, str]:
        headers = {}
        session = self.sessions.get(role)
        if session is not None:
            headers["Cookie"] = f"nexus_session={session.cookie}"
        if origin == "same":
            headers["Origin"] = self.origin()
        elif origin == "foreign":
            headers["Origin"] = FOREIGN_ORIGIN
        return headers

    def next_probe(self) -> str:
        """An interview that does not exist: a join naming it is refused with its name, so
        its answer shows that every frame sent before it was handled."""
        self.probes += 1
        return f"iv_{PROBE_BASE + self.probes:016x}"

    async def run_script(self, script: SocketScript) -> None:
        """Open the socket, send the frames and a probe, read up to the probe's answer (or
        to the close a frame must cause). Frames count as sent if the socket was let in:
        one over the sign-in's limit is refused at once, and counts as one input."""
        what = f"a socket of {script.role} (Origin {script.origin})"
        try:
            ws = await self.http.ws_connect(
                self.url("/ws"), headers=self.socket_headers(script.role, script.origin)
            )
        except WSServerHandshakeError as exc:
            self.tally.sent["ws-handshake"] += 1
            self.tally.statuses[exc.status] += 1
            if exc.status >= 500:
                self.tally.fail(f"{exc.status} opening {what}")
            return
        what = f"{what}, {script!r}"
        sent, probe = 0, None
        try:
            try:
                for frame in script.frames:
                    data = self.frame_bytes(frame)
                    binary = isinstance(frame, bytes)
                    await ws.send_frame(data, WSMsgType.BINARY if binary else WSMsgType.TEXT)
                    sent += 1
                    if not binary and _closes_the_socket(data):
                        break
                else:
                    probe = self.next_probe()
                    await ws.send_str(json.dumps({"v": 1, "type": "join", "interview_id": probe}))
            except (ClientError, ConnectionError):
                pass  # the server closed it (a refusal): reading says why
            let_in = await self._read_until(ws, probe, what)
        except (ClientError, ConnectionError) as exc:
            self.tally.fail(f"{what} broke: {exc!r}")
            return
        finally:
            await ws.close()
        if let_in:
            self.tally.sent["ws"] += sent
        else:
            self.tally.sent["ws-handshake"] += 1

    def frame_bytes(self, frame: str | bytes) -> bytes:
        """A binary frame as it is; a text frame as UTF-8, lone surrogates and all."""
        if isinstance(frame, bytes):
            return frame
        return self.fill(frame).encode("utf-8", "surrogatepass")

    async def _read_until(self, ws: ClientWebSocketResponse, probe: str | None, what: str) -> bool:
        """Read answers until the probe's, or until the server closes the socket; False
        if it refused the socket as one too many for the sign-in."""
        let_in = True
        while True:
            try:
                frame = await ws.receive(timeout=20)
            except TimeoutError:
                self.tally.fail(f"no answer to the probe within 20 s on {what}")
                return let_in
            if frame.type is WSMsgType.TEXT:
                message = json.loads(frame.data)
                self.judge(message, what)
                let_in = let_in and message.get("code") != "too_many_sockets"
                if probe is not None and probe in message.get("message", ""):
                    return let_in
            elif frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                self.tally.closes[ws.close_code or 0] += 1
                if ws.close_code not in ORDERLY_CLOSES:
                    self.tally.fail(f"closed with {ws.close_code} ({frame.extra}): {what}")
                return let_in
            else:
                self.tally.fail(f"unexpected {frame.type} {frame.data!r} on {what}")
                return let_in

    def judge(self, message: dict[str, Any], what: str) -> None:
        if message.get("type") == "error" and message.get("code") == "internal_error":
            self.tally.fail(f"internal_error on {what}: {message}")


async def _officer_session(world: World, account: Account) -> Session:
    client = await world.client()
    assert (await world.sign_in(client, account)).status == 303
    return await world.session_of(client)


async def _applicant_session(world: World, token: str, dob: str) -> Session:
    client = await world.client()
    assert (await world.confirm_dob(client, token, dob)).status == 303
    return await world.session_of(client)


async def _take(world: World, session: Session, interview_id: str) -> None:
    response = await (await world.client(session)).post(f"/api/interviews/{interview_id}/take")
    assert response.status == 200, await response.text()


async def _waiting(world: World, session: Session, interview_id: str) -> Seated:
    """The applicant of ``session`` consents and enters the waiting room, on a socket."""
    client = await world.client(session)
    consent = await client.post(
        "/api/applicant/consent", json={"text_version": CONSENT_VERSION, "language": "en"}
    )
    assert consent.status == 201, await consent.text()
    seated = await open_socket(world, client)
    await seated.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
    await seated.expect(m.Waiting)
    return seated


async def _started(
    world: World, sessions: dict[str, Session], interview_id: str, *roles: str
) -> Seated:
    """The call of ``interview_id`` on: its applicant (``roles[0]``) waits, its officers
    (the rest) take it, which starts the call; the applicant's socket, told to join."""
    applicant = await _waiting(world, sessions[roles[0]], interview_id)
    for role in roles[1:]:
        await _take(world, sessions[role], interview_id)
    await applicant.expect(m.Paired)
    return applicant


async def _still_with_applicant_in_call(
    world: World, applicant: Seated, officer: Session, interview_id: str, offer: str
) -> None:
    """The applicant joins the call (their offer answered, their join stored), the officer
    captures an ID still, and the applicant's page goes: the call stays on without them."""
    await join(applicant, interview_id)
    answer = await applicant.ask(m.Offer(sdp=offer))
    assert isinstance(answer, m.Answer), answer
    await world.server.app[LIVES].drain()
    still = await (await world.client(officer)).post(
        f"/api/interviews/{interview_id}/stills",
        data=jpeg_image(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert still.status == 201, await still.text()
    await applicant.ws.close()


OFFICERS = {
    "cbsa.live": Agency.CBSA,
    "cbp.live": Agency.CBP,
    "cbsa.b": Agency.CBSA,
    "cbp.b": Agency.CBP,
    "cbsa.free": Agency.CBSA,
    "cbsa.free2": Agency.CBSA,
    "cbsa.locked": Agency.CBSA,
    "cbsa.lc": Agency.CBSA,
    "cbp.lc": Agency.CBP,
    "cbsa.lc2": Agency.CBSA,
}
OFFICER_ROLES = {
    "cbsa_assigned": "cbsa.b",
    "cbp_assigned": "cbp.b",
    "unassigned_officer": "cbsa.free",
    "second_unassigned": "cbsa.free2",
    "live_cbsa": "cbsa.live",
    "live_cbp": "cbp.live",
    "lc_cbsa": "cbsa.lc",
    "lc_cbp": "cbp.lc",
    "lc_other_cbsa": "cbsa.lc2",
}


async def build_scene(world: World, base_sdp: str, http: ClientSession) -> Scene:
    """Interview A is the live call, its three people on sessions of their own (the
    applicant consented and waited, both officers took it: its call is on, nobody in it
    yet); B's call is on too, with a still captured while its applicant was in it, who then
    went; C's applicant checked in, nothing more; C and E wait for officers; D's link is
    the one to lock; F, which no input names, is the one two officers race to take; G, which
    no input names either, is the lifecycle battery's (its applicant checked in)."""
    keys = "ABCDEFG"
    await add_applications(
        world.store,
        *(
            application(f"NX-000{n}", date_of_birth=DOBS.get(key, "1970-01-01"))
            for n, key in enumerate(keys, start=1)
        ),
    )
    ids, tokens = {}, {}
    for n, key in enumerate(keys, start=1):
        ids[key], tokens[key] = await world.invite(f"NX-000{n}")
    accounts = {name: await world.add_officer(name, agency) for name, agency in OFFICERS.items()}
    sessions = {
        "anonymous": await world.session_of_anonymous(),
        "applicant": await _applicant_session(world, tokens["B"], DOBS["B"]),
        "other_applicant": await _applicant_session(world, tokens["C"], DOBS["C"]),
        "live_applicant": await _applicant_session(world, tokens["A"], DOBS["A"]),
        "lc_applicant": await _applicant_session(world, tokens["G"], "1970-01-01"),
        "auditor": await _officer_session(world, await world.add_auditor("auditor.one")),
    }
    for role, name in OFFICER_ROLES.items():
        sessions[role] = await _officer_session(world, accounts[name])
    b = await _started(world, sessions, ids["B"], "applicant", "cbsa_assigned", "cbp_assigned")
    await _still_with_applicant_in_call(world, b, sessions["cbsa_assigned"], ids["B"], base_sdp)
    live = await _started(world, sessions, ids["A"], "live_applicant", "live_cbsa", "live_cbp")
    await live.ws.close()  # the call's process opens the seats' own sockets
    return Scene(
        world=world,
        sessions=sessions,
        interviews=dict(zip(a.INTERVIEW_IDS, (ids[k] for k in "ABCDE"), strict=True)),
        tokens=dict(zip(a.TOKENS, (tokens[k] for k in "ABCD"), strict=True)),
        accounts=accounts,
        race_interview=ids["F"],
        lifecycle_interview=ids["G"],
        base_sdp=base_sdp,
        http=http,
    )


def attack_client() -> ClientSession:
    """A client without a cookie jar (each request names its cookie) that opens a
    connection per request: a request the server refuses before reading its body, or whose
    Content-Length lies, leaves nothing behind for the next one to trip on."""
    return ClientSession(
        cookie_jar=DummyCookieJar(),
        connector=TCPConnector(limit=64, force_close=True),
        timeout=ClientTimeout(total=30),
    )
