"""How the apps are served and logged (server/serving.py, server/logs.py): no secret in any
log at any level, and aiohttp's own answer to a malformed request echoes nothing, carries
the security headers and logs one line.

Real servers on 127.0.0.1 through `serving.start`, raw bytes over a socket, a real SQLite
store, and the log as the root logger hands it to any handler, at DEBUG."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from common.logs import QUIET_LIBRARIES, configure_logging
from common.names import Agency
from common.secret import Secret
from recordings.keys import Identity, write_identity_file
from server import operator, serving
from server.app import create_app
from server.logs import SECRET_PATH_PREFIXES
from server.middleware import SECURITY_HEADERS
from server.session_records import checkpoint_signer
from server.settings import Settings
from server.store import Store
from server.types import InterviewId, InterviewMode
from server.views.routes import ROUTES

from .audit_scene import NOTES, audit_scene, sign_in
from .conftest import with_recipients
from .debug_logging import logging_at_debug
from .fakes import Account, FakeClock, World, add_applications, application, fast_passwords
from .served import free_port

MARKER = "Echo7Marker"
TOKEN = "tok" + "x" * 40  # the shape of an invitation token: 43 URL-safe characters


class Capture(logging.Handler):
    """Every record the root logger hands out, formatted as an operator's handler would
    (message, then any traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def problems(self) -> list[str]:
        """Records at ERROR or above, and any record with a traceback."""
        return [self.format(r) for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


# Logged at DEBUG by a test to show that its log is at that level.
LEVEL_PROBE = "the log is at DEBUG"


@pytest.fixture
def debug_log() -> Iterator[Capture]:
    """The log as `nexus-interview --log-level DEBUG` sets it up; restored afterwards."""
    capture = Capture()
    with logging_at_debug(capture):
        yield capture


@pytest.fixture
async def port(settings: Settings, debug_log: Capture) -> AsyncIterator[int]:
    """The interview server, started through `serving.start` on a free port."""
    runner = await serving.start(create_app(settings, passwords=fast_passwords()), "127.0.0.1", 0)
    listening: int = runner.addresses[0][1]
    yield listening
    await runner.cleanup()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def exchange(port: int, raw: bytes) -> Answer:
    """Send ``raw`` on a fresh connection; the answer, read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, body)


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


MARK = MARKER.encode()
CHUNKED = b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
MALFORMED = {
    "a bad request line": b"GET /i/" + MARK + b" HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "a bad HTTP version": b"GET /" + MARK + b" HTTQ/1.1\r\nHost: x\r\n\r\n",
    "a control character in the method": b"G\x01T /" + MARK + b" HTTP/1.1\r\n\r\n",
    "non-ASCII in the method": b"G\xc3\xa9T /" + MARK + b" HTTP/1.1\r\n\r\n",
    "a space in a header name": b"GET / HTTP/1.1\r\nHost: x\r\nBad " + MARK + b": v\r\n\r\n",
    "a NUL in a header value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + MARK + b"\x00\r\n\r\n",
    "invalid chunked encoding": CHUNKED + MARK + b"\r\nxx\r\n0\r\n\r\n",
    "both Content-Length and chunked": CHUNKED[:-2] + b"Content-Length: 3\r\n\r\n0\r\n\r\n",
    "an over-long header": b"GET / HTTP/1.1\r\nX-Long: " + MARK + b"a" * 9000 + b"\r\n\r\n",
    "an over-long request line": b"GET /" + MARK + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\n" + b"X-A: " + MARK + b"\r\n" * 200 + b"\r\n",
}


def assert_plain_refusal(answer: Answer) -> None:
    assert answer.status == 400
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name.lower()) == value, name
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.body == serving.MALFORMED.encode()


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_gets_a_plain_400_with_the_security_headers_and_one_log_line(
    port: int, debug_log: Capture, raw: bytes
) -> None:
    answer = await exchange(port, raw)

    assert_plain_refusal(answer)
    assert MARK not in answer.body
    assert debug_log.problems() == []
    refusals = [line for line in debug_log.lines if "refused a malformed request" in line]
    assert len(refusals) == 1, debug_log.text
    assert MARKER not in debug_log.text


async def test_the_access_log_shows_the_invitation_path_but_never_its_token(
    port: int, debug_log: Capture
) -> None:
    for target in (
        f"/i/{TOKEN}",
        f"/i/{TOKEN}/",
        f"/i/{TOKEN}?lang=fr",
        f"/%69/{TOKEN}",  # the same page, percent-encoded
        f"//i/{TOKEN}",
    ):
        assert (await exchange(port, get(target))).status in (200, 404, 410)

    assert TOKEN not in debug_log.text
    access = [r.getMessage() for r in debug_log.records if r.name == "aiohttp.access"]
    assert len(access) == 5, debug_log.text
    assert all('"GET ' in line for line in access)
    assert sum('"GET /i/<redacted>"' in line for line in access) == 3, access


async def test_the_access_log_never_writes_a_query_string(port: int, debug_log: Capture) -> None:
    await exchange(port, get(f"/login?next={MARKER}&code=123456"))

    assert MARKER not in debug_log.text
    access = [r.getMessage() for r in debug_log.records if r.name == "aiohttp.access"]
    assert len(access) == 1 and '"GET /login" 200' in access[0], access


def test_every_route_with_a_token_in_its_path_is_redacted_in_the_access_log() -> None:
    with_tokens = [route.path for route in ROUTES if "{token}" in route.path]
    assert with_tokens
    for path in with_tokens:
        assert path.startswith(SECRET_PATH_PREFIXES), path


async def test_database_writes_at_debug_never_log_their_parameters(
    settings: Settings, debug_log: Capture
) -> None:
    logging.getLogger("server.store").debug(LEVEL_PROBE)
    secret = f"Secret-{secrets.token_hex(8)}"
    store = await Store(settings.database_path).open()
    try:
        await add_applications(store, application("NX-0001", surname=secret))
        enrolment = await operator.add_officer(
            store, fast_passwords(), "officer1", secret, Agency.CBSA, None, Secret(secret)
        )
        account = await store.accounts.by_username("officer1")
    finally:
        await store.close()
    assert account is not None

    text = debug_log.text
    assert f"DEBUG server.store: {LEVEL_PROBE}" in text  # the level is on
    for value in (secret, account.password_hash.reveal(), enrolment.totp_secret.reveal()):
        assert value not in text
    assert debug_log.problems() == []


def test_quiet_libraries_stay_at_warning_whatever_the_level(debug_log: Capture) -> None:
    for level in ("DEBUG", "INFO", "WARNING", "ERROR"):
        configure_logging(level)
        for name in (*QUIET_LIBRARIES, "aiortc.rtcpeerconnection", "aioice.ice"):
            effective = logging.getLogger(name).getEffectiveLevel()
            assert effective >= max(logging.WARNING, logging.getLevelNamesMapping()[level])


# What the connection class relies on in aiohttp; a change here fails loudly.


def test_aiohttp_still_builds_connections_the_way_serving_replaces() -> None:
    parameters = list(inspect.signature(web.RequestHandler.handle_error).parameters)
    assert parameters == ["self", "request", "status", "exc", "message"]
    assert "_request_count" in web.RequestHandler.__slots__
    # A failure after the answer (draining an unread body) reaches log_exception(exc_info=…).
    source = inspect.getsource(web.RequestHandler.start)
    assert 'self.log_exception("Unhandled exception", exc_info=exc)' in source

    async def build() -> set[str]:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return web.Response()

        return set(vars(web.Server(handler, keepalive_timeout=5)))

    # `_Server.like` copies every attribute but the (empty) connection table.
    assert asyncio.run(build()) == {
        "_loop",
        "_connections",
        "_kwargs",
        "requests_count",
        "request_handler",
        "request_factory",
        "handler_cancellation",
    }


async def test_the_runner_serves_through_our_connection_class(settings: Settings) -> None:
    app = create_app(settings, passwords=fast_passwords())
    runner = await serving.start(app, "127.0.0.1", 0)
    try:
        assert isinstance(runner.server, serving._Server)
        handler = runner.server()
        assert isinstance(handler, serving._RequestHandler)
        assert handler.access_logger is not None
        assert type(handler.access_logger).__name__ == "AccessLog"
        assert handler.keepalive_timeout == serving.KEEPALIVE_SECONDS
    finally:
        await runner.cleanup()


# The commands, as an operator runs them.


EXE = Path(sys.executable).with_name("nexus-interview")


async def _audit_console_command(settings: Settings, tmp_path: Path, port: int) -> list[str]:
    await (await Store(settings.database_path).open()).close()
    identity = tmp_path / "audit.txt"
    write_identity_file(identity, Identity.generate())
    key = checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    return [
        "--data-dir", str(settings.data_dir), "--audit-dir", str(tmp_path / "console"),
        "--audit-port", str(port), "audit-console", "--identity", str(identity), "--key", key,
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["serve", "audit-console"])
async def test_the_commands_serve_this_way_and_stop_cleanly(
    command: str, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    if command == "serve":
        args = ["--data-dir", str(settings.data_dir), "--port", str(port), "serve"]
    else:
        args = await _audit_console_command(settings, tmp_path, port)
    env = os.environ | {"NEXUS_LOG_LEVEL": "DEBUG"}
    process = await asyncio.create_subprocess_exec(
        str(EXE), *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        for _ in range(200):
            try:
                answer = await exchange(port, MALFORMED["a bad request line"])
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the server did not start")
        assert_plain_refusal(answer)
        await exchange(port, get(f"/i/{TOKEN}?lang={MARKER}"))
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "refused a malformed request" in log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert TOKEN not in log and MARKER not in log, log
    assert '"GET /i/<redacted>"' in log, log


# A whole interview at DEBUG: none of the secrets it made reaches the log.


class ServedTestServer(TestServer):
    """aiohttp's test server, with the runner `serving` serves every app with."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return serving.runner(self.app, **kwargs)


@dataclass
class SecretKeepingWorld(World):
    """A `World` that remembers every secret it hands out."""

    handed_out: dict[str, str] = field(default_factory=dict)

    async def invite(
        self, app_id: str, mode: InterviewMode = InterviewMode.JOINT, hours: int = 8
    ) -> tuple[InterviewId, str]:
        interview_id, token = await super().invite(app_id, mode, hours)
        self.handed_out[f"invitation token of {app_id}"] = token
        return interview_id, token

    async def add_officer(self, username: str, agency: Agency) -> Account:
        return self._keep(await super().add_officer(username, agency))

    async def add_auditor(self, username: str) -> Account:
        return self._keep(await super().add_auditor(username))

    def _keep(self, account: Account) -> Account:
        self.handed_out[f"password of {account.username}"] = account.password.reveal()
        self.handed_out[f"TOTP secret of {account.username}"] = account.totp_secret.reveal()
        return account


@pytest.fixture
async def served_world(
    tmp_path: Path, settings: Settings, clock: FakeClock, debug_log: Capture
) -> AsyncIterator[tuple[SecretKeepingWorld, dict[str, Path]]]:
    """As conftest's ``recorded``, served through `serving`, logging at DEBUG."""
    configured, keys = with_recipients(settings, tmp_path / "agency-keys")
    server = ServedTestServer(create_app(configured, clock, fast_passwords()), host="127.0.0.1")
    await server.start_server()
    world = SecretKeepingWorld(server, configured, clock, fast_passwords())
    yield world, keys
    for client in world.clients:
        await client.close()
    await server.close()


async def test_a_whole_interview_at_debug_logs_none_of_the_secrets_it_made(
    served_world: tuple[SecretKeepingWorld, dict[str, Path]], tmp_path: Path, debug_log: Capture
) -> None:
    logging.getLogger("server").debug(LEVEL_PROBE)
    world, keys = served_world
    async with audit_scene(world, keys, tmp_path) as scene:
        console, status = await sign_in(scene, scene.auditor)
        assert status == 303
        assert (await console.get(f"/sessions/{scene.interview_id}")).status == 200
        secrets_made = dict(world.handed_out)
        secrets_made["decision notes"] = NOTES
        for number, client in enumerate(world.clients):
            for cookie in client.session.cookie_jar:
                secrets_made[f"{cookie.key} cookie of client {number}"] = cookie.value
        for account in await world.store.accounts.officers():
            secrets_made[f"password hash of {account.username}"] = account.password_hash.reveal()
        auditor = await world.store.accounts.by_username(scene.auditor.username)
        assert auditor is not None
        secrets_made["password hash of the auditor"] = auditor.password_hash.reveal()
    secrets_made["session key"] = world.settings.session_key_path.read_text().strip()

    assert {"invitation token of NX-0001", "decision notes"} <= secrets_made.keys()
    assert sum(name.startswith("nexus_session cookie") for name in secrets_made) >= 3
    assert sum(name.startswith("nexus_audit cookie") for name in secrets_made) == 1
    log = debug_log.text
    assert f"DEBUG server: {LEVEL_PROBE}" in log  # the level was on
    leaked = [name for name, value in secrets_made.items() if value in log]
    assert leaked == []
    assert '"POST /i/<redacted>"' in log  # the link was used, and its use logged
    assert "AGE-SECRET-KEY-" not in log.upper()


class _Started(Exception):
    pass


@pytest.mark.parametrize("name", ["uvloop", "asyncio"])
def test_serve_runs_on_the_event_loop_the_setting_names(name: str) -> None:
    """`serve` runs the app on the loop the ``event_loop`` setting names."""
    seen: list[str] = []

    async def note_loop(app: web.Application) -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)
        raise _Started  # seen: stop here

    app = web.Application()
    app.on_startup.append(note_loop)
    with pytest.raises(_Started):
        serving.serve(app, "127.0.0.1", 0, name)
    assert seen == ["uvloop" if name == "uvloop" else "asyncio.unix_events"]


async def test_the_device_checks_relay_request_never_logs_its_token(
    port: int, debug_log: Capture
) -> None:
    """The device check asks for relay credentials with the invitation's token in the path."""
    assert (await exchange(port, get(f"/api/invitations/{TOKEN}/relays"))).status in (404, 410)

    assert TOKEN not in debug_log.text
    access = [r.getMessage() for r in debug_log.records if r.name == "aiohttp.access"]
    assert access and all('"GET /api/invitations/<redacted>"' in line for line in access), access
