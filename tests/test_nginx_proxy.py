"""deploy/nginx.conf, as checked in, in front of the interview server and coturn: one port,
443, carries the pages, the call's WebSocket and TURN over TLS, routed by SNI, and the
interview server still sees each client's own address.

Five machines on one switch (tests/netns.py): ``proxy`` runs nginx with deploy/nginx.conf
filled in by envsubst, as the file's header says; ``app`` runs `nexus-interview serve`
(plain HTTP, trusting the proxy's address) and a UDP echo standing in for a media worker;
``turn`` runs coturn configured by `nexus-interview turn-config`, TLS on 443; ``client``
and ``neighbour`` are browsers' machines, where both names resolve to the proxy. Clients
trust only the test CA, which signed both names' certificates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pyotp
import pytest
from aioice.turn import create_turn_endpoint

from common.secret import Secret
from server.turn import mint
from tests.certificates import Issued, TestCA, presented_certificate
from tests.coturn import ECHO_PORT, Inbox, echo, listening, start_coturn
from tests.netns import Machine, Network, in_namespace
from tests.nginx import start_nginx

PAGES_NAME = "interviews.nexus.test"
TURN_NAME = "turn.nexus.test"
APP_PORT = 8080
ATTEMPTS_PER_MINUTE = 4
SECRET = "nginx-test-turn-secret-" + os.urandom(16).hex()
EXE = Path(sys.executable).parent / "nexus-interview"
OFFICER = ["--username", "olivia", "--name", "Olivia", "--agency", "CBSA"]


@dataclass
class Site:
    proxy: Machine
    app: Machine
    turn: Machine
    client: Machine
    neighbour: Machine
    ca: TestCA
    pages: Issued
    turn_cert: Issued
    officer: tuple[str, str, str]  # username, password, TOTP secret
    app_log: Path


def _clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    return env | {f"NEXUS_{name.upper()}": value for name, value in settings.items()}


def _add_officer(data_dir: Path) -> tuple[str, str, str]:
    password = "officer-password-long"
    done = subprocess.run(
        [str(EXE), "officers", "add", "--password-stdin", *OFFICER],
        input=password + "\n",
        env=_clean_env(data_dir=str(data_dir)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    uri = re.search(r"otpauth://\S+", done.stdout)
    assert uri is not None, done.stdout
    return "olivia", password, parse_qs(urlsplit(uri.group(0)).query)["secret"][0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for command, package in (("nginx", "nginx"), ("turnserver", "coturn"), ("envsubst", "")):
        if shutil.which(command) is None:
            pytest.fail(f"this test drives a real {command}: `make heavy` installs {package}")
    directory = tmp_path_factory.mktemp("nginx")
    ca = TestCA.create(directory / "ca")
    pages, turn_cert = ca.issue("pages", PAGES_NAME), ca.issue("turn", TURN_NAME)
    data_dir = directory / "data"
    officer = _add_officer(data_dir)
    with Network() as network:
        proxy, app, turn = network.machine("proxy"), network.machine("app"), network.machine("turn")
        client, neighbour = network.machine("client"), network.machine("neighbour")
        for browser in (client, neighbour):
            browser.resolve(PAGES_NAME, proxy.address)
            browser.resolve(TURN_NAME, proxy.address)

        settings = {
            "host": app.address,
            "port": str(APP_PORT),
            "public_url": f"https://{PAGES_NAME}",
            "trusted_proxies": proxy.address,
            "data_dir": str(data_dir),
            "media_workers": "0",
            "login_attempts_per_minute": str(ATTEMPTS_PER_MINUTE),
        }
        app_log = directory / "app.log"
        with open(app_log, "wb") as out:
            app.popen([str(EXE), "serve"], env=_clean_env(**settings), stdout=out, stderr=out)
        app.thread().submit(echo(app.address)).result(timeout=10)
        start_coturn(turn, directory, SECRET, TURN_NAME, app.address, turn_cert)

        start_nginx(
            proxy,
            directory,
            {
                "PAGES_NAME": PAGES_NAME,
                "TURN_NAME": TURN_NAME,
                "PAGES_CERT": str(pages.cert),
                "PAGES_KEY": str(pages.key),
                "INTERVIEW_SERVER": f"{app.address}:{APP_PORT}",
                "TURN_TLS_SERVER": f"{turn.address}:443",
            },
        )

        in_namespace(proxy, listening, app.address, APP_PORT, 60)
        in_namespace(proxy, listening, turn.address, 443, 20)
        in_namespace(client, listening, proxy.address, 443, 20)
        yield Site(proxy, app, turn, client, neighbour, ca, pages, turn_cert, officer, app_log)


async def _get(url: str, context: ssl.SSLContext) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return response.status, await response.text(), dict(response.headers)


def test_a_page_is_served_by_name_on_443_with_the_pages_certificate(site: Site) -> None:
    context = site.ca.client_context()

    status, body, headers = in_namespace(site.client, _get, f"https://{PAGES_NAME}/login", context)
    der = in_namespace(site.client, presented_certificate, PAGES_NAME, 443, context)

    assert status == 200 and "<form" in body
    assert "Strict-Transport-Security" in headers  # the interview server's own answer
    assert der == site.pages.der


async def _socket_exchange(site: Site, context: ssl.SSLContext) -> dict[str, str]:
    username, password, totp_secret = site.officer
    jar = aiohttp.CookieJar()
    base = f"https://{PAGES_NAME}"
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base}/api/session", ssl=context) as response:
            csrf = (await response.json())["csrf_token"]
        form = {
            "csrf_token": csrf,
            "username": username,
            "password": password,
            "code": pyotp.TOTP(totp_secret).now(),
        }
        async with session.post(
            f"{base}/login", data=form, ssl=context, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
        async with session.ws_connect(f"wss://{PAGES_NAME}/ws", ssl=context, origin=base) as ws:
            await ws.send_str("not a message")
            answer: dict[str, str] = json.loads(await asyncio.wait_for(ws.receive_str(), 10))
            return answer


def test_the_calls_websocket_upgrades_through_nginx(site: Site) -> None:
    answer = in_namespace(site.neighbour, _socket_exchange, site, site.ca.client_context())

    assert answer["type"] == "error"  # the interview server read the frame and answered


async def _relay_through_443(site: Site, context: ssl.SSLContext) -> tuple[str, bytes, str]:
    credential = mint(Secret(SECRET), "iv_0123456789abcdef-applicant", _now(), 600)
    endpoint, inbox = await create_turn_endpoint(
        Inbox,
        (TURN_NAME, 443),
        credential.username,
        credential.password.reveal(),
        ssl=context,
        transport="tcp",
    )
    try:
        relayed = endpoint.get_extra_info("sockname")
        endpoint.sendto(b"hello", (site.app.address, ECHO_PORT))
        data, source = await asyncio.wait_for(inbox.received.get(), 5)
        return relayed[0], data, source[0]
    finally:
        endpoint.close()
        await asyncio.sleep(0.1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_turn_over_tls_by_name_passes_through_to_coturn(site: Site) -> None:
    context = site.ca.client_context()

    der = in_namespace(site.client, presented_certificate, TURN_NAME, 443, context)
    relayed, data, source = in_namespace(site.client, _relay_through_443, site, context)

    assert der == site.turn_cert.der  # coturn's own certificate: nginx decrypted nothing
    assert relayed == site.turn.address  # coturn allocated the relay
    assert (data, source) == (b"echo:hello", site.app.address)


async def _failed_sign_in(context: ssl.SSLContext, forwarded_for: str | None = None) -> int:
    base = f"https://{PAGES_NAME}"
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar()) as session:
        async with session.get(f"{base}/api/session", ssl=context) as response:
            csrf = (await response.json())["csrf_token"]
        form = {
            "csrf_token": csrf,
            "username": f"nobody-{os.urandom(4).hex()}",  # no account lock in the way
            "password": "wrong-password-long",
            "code": "000000",
        }
        async with session.post(
            f"{base}/login", data=form, headers=headers, ssl=context, allow_redirects=False
        ) as response:
            return response.status


async def _failed_sign_ins(context: ssl.SSLContext, count: int) -> list[int]:
    return [await _failed_sign_in(context) for _ in range(count)]


def test_the_interview_server_throttles_the_client_machine_not_the_proxy(site: Site) -> None:
    context = site.ca.client_context()

    statuses = in_namespace(site.client, _failed_sign_ins, context, ATTEMPTS_PER_MINUTE + 1)
    spoofed = in_namespace(site.client, _failed_sign_in, context, site.neighbour.address)
    neighbour = in_namespace(site.neighbour, _failed_sign_in, context)

    assert statuses == [401] * ATTEMPTS_PER_MINUTE + [429], site.app_log.read_text()
    assert spoofed == 429  # naming another address gets the client nowhere
    assert neighbour == 401  # another machine behind the same proxy signs in as before
    log = site.app_log.read_text()
    assert f'{site.client.address} "POST /login" 429' in log  # the access log names it too
    assert f'{site.proxy.address} "POST /login"' not in log
