"""`serve` answers HTTPS itself when given a certificate and its key (the ``tls_cert``
and ``tls_key`` settings; server/serving.py): pages and the call's WebSocket (wss://),
with the configured certificate, which a client trusting only the test CA accepts.

Real servers on 127.0.0.1: the installed `nexus-interview serve` command, and the app
started through `serving.start` as `serve` starts it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pyotp
import pytest

from common.errors import SettingError
from common.names import Agency
from common.secret import Secret
from server import operator, serving
from server.app import create_app
from server.appkeys import STORE
from server.settings import Settings, load_settings

from .certificates import Issued, TestCA, presented_certificate
from .fakes import FakeClock, fast_passwords
from .served import free_port

EXE = Path(sys.executable).parent / "nexus-interview"
NAME = "localhost"


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA.create(tmp_path / "ca")


@pytest.fixture
def issued(ca: TestCA) -> Issued:
    return ca.issue("server", NAME, "127.0.0.1")


async def _served_command(
    settings: Settings, issued: Issued, port: int
) -> asyncio.subprocess.Process:
    args = [
        "--data-dir", str(settings.data_dir), "--port", str(port), "--media-workers", "0",
        "--public-url", f"https://{NAME}:{port}",
        "--tls-cert", str(issued.cert), "--tls-key", str(issued.key), "serve",
    ]  # fmt: skip
    return await asyncio.create_subprocess_exec(
        str(EXE), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )


async def _listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return
    raise AssertionError("the server did not start")


async def test_serve_answers_https_with_the_configured_certificate(
    settings: Settings, ca: TestCA, issued: Issued
) -> None:
    port = free_port()
    process = await _served_command(settings, issued, port)
    try:
        await _listening(port)
        assert await presented_certificate(NAME, port, ca.client_context()) == issued.der
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"https://{NAME}:{port}/login", ssl=ca.client_context()
            ) as response:
                assert response.status == 200
            cookies = {cookie.key: cookie for cookie in session.cookie_jar}
            assert cookies["nexus_session"]["secure"]  # the session cookie stays Secure
            # A client that does not trust the test CA refuses the certificate...
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://{NAME}:{port}/login", ssl=ssl.create_default_context())
            # ...and the port speaks nothing but TLS.
            with pytest.raises(aiohttp.ClientError):
                await session.get(f"http://{NAME}:{port}/login")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()


@dataclass
class Served:
    url: str
    clock: FakeClock
    settings: Settings


@pytest.fixture
async def served_tls(
    settings: Settings, clock: FakeClock, issued: Issued
) -> AsyncIterator[tuple[Served, operator.Enrolment]]:
    """The interview server, started through `serving.start` with the certificate, and
    an officer who may open the call's socket."""
    configured = settings.replace(public_url=f"https://{NAME}")
    app = create_app(configured, clock, fast_passwords())
    context = serving.tls_context(issued.cert, issued.key)
    runner = await serving.start(app, "127.0.0.1", 0, ssl_context=context)
    try:
        port = runner.addresses[0][1]
        password = "officer-password-long"
        enrolment = await operator.add_officer(
            app[STORE], fast_passwords(), "olivia", "Olivia", Agency.CBSA, None, Secret(password)
        )
        yield Served(f"https://{NAME}:{port}", clock, configured), enrolment
    finally:
        await runner.cleanup()


async def test_the_calls_websocket_works_over_wss(
    served_tls: tuple[Served, operator.Enrolment], ca: TestCA
) -> None:
    served, enrolment = served_tls
    context = ca.client_context()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{served.url}/api/session", ssl=context) as response:
            csrf = (await response.json())["csrf_token"]
        code = pyotp.TOTP(enrolment.totp_secret.reveal()).at(served.clock())
        form = {
            "csrf_token": csrf,
            "username": "olivia",
            "password": "officer-password-long",
            "code": code,
        }
        async with session.post(
            f"{served.url}/login", data=form, ssl=context, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
        socket_url = served.url.replace("https://", "wss://") + "/ws"
        async with session.ws_connect(socket_url, ssl=context) as ws:
            await ws.send_str("not a message")
            answer = json.loads(await asyncio.wait_for(ws.receive_str(), 10))
            assert answer["type"] == "error"  # the server read it and answered, over TLS


def test_a_certificate_without_its_key_is_refused(issued: Issued) -> None:
    for given in ({"NEXUS_TLS_CERT": str(issued.cert)}, {"NEXUS_TLS_KEY": str(issued.key)}):
        with pytest.raises(SettingError, match="NEXUS_TLS_CERT and NEXUS_TLS_KEY go together"):
            load_settings(given, {})


@pytest.mark.parametrize("problem", ["a missing key file", "a key that is not the cert's"])
def test_serve_stops_at_start_on_an_unusable_certificate_and_says_why(
    settings: Settings, ca: TestCA, issued: Issued, tmp_path: Path, problem: str
) -> None:
    if problem == "a missing key file":
        key, words = tmp_path / "absent.key", "cannot read the TLS certificate or key"
    else:
        key, words = ca.issue("other", "other.test").key, "are not a PEM certificate chain"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    args = ["--data-dir", str(settings.data_dir), "--port", str(free_port())]
    args += ["--tls-cert", str(issued.cert), "--tls-key", str(key), "serve"]
    result = subprocess.run([str(EXE), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_tls_with_an_http_public_url_is_warned_at_start(
    settings: Settings, issued: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    configured = settings.replace(tls_cert=issued.cert, tls_key=issued.key)
    with caplog.at_level(logging.WARNING, logger="server.serving"):
        context = serving.settings_tls(configured)
        assert context is not None
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert any("NEXUS_PUBLIC_URL" in r.getMessage() for r in caplog.records)
        caplog.clear()
        serving.settings_tls(configured.replace(public_url="https://interviews.example"))
        assert caplog.records == []
    assert serving.settings_tls(settings) is None
