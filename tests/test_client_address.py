"""Which client a request comes from (server/client_address.py): X-Forwarded-For is
believed from a trusted proxy only, read from the right, so the sign-in throttle counts
each real client behind the proxy and a forged header gains nothing.

The interview server runs for real on 127.0.0.1 (aiohttp's test server); the test's client
stands in for the proxy, whose peer address is 127.0.0.1."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from server import serving
from server.app import create_app
from server.client_address import believed_client
from server.settings import Settings

from .fakes import FakeClock, World, fast_passwords

PER_MINUTE = 3
PROXY = "127.0.0.1"
CLIENT_A, CLIENT_B = "203.0.113.7", "198.51.100.9"


async def _world(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    passwords = fast_passwords()
    server = TestServer(create_app(settings, clock, passwords), host="127.0.0.1")
    await server.start_server()
    running = World(server, settings, clock, passwords)
    yield running
    for client in running.clients:
        await client.close()
    await server.close()


@pytest.fixture
async def behind_proxy(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The server, trusting the proxy on 127.0.0.1."""
    trusting = settings.replace(
        trusted_proxies=(ipaddress.ip_network(PROXY),), login_attempts_per_minute=PER_MINUTE
    )
    async for world in _world(trusting, clock):
        yield world


@pytest.fixture
async def trusting_nobody(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    async for world in _world(settings.replace(login_attempts_per_minute=PER_MINUTE), clock):
        yield world


async def _failed_sign_in(world: World, forwarded_for: str | None) -> int:
    """The status of a sign-in with a wrong password, sent with that X-Forwarded-For."""
    client = await world.client()
    csrf = await world.csrf(client)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    # A new username each time: the account lock, which counts per name, stays out of it.
    username = f"nobody-{secrets.token_hex(4)}"
    form = {"csrf_token": csrf, "username": username, "password": "wrong" * 4, "code": "000000"}
    response = await client.post("/login", data=form, headers=headers, allow_redirects=False)
    return response.status


async def test_a_trusted_proxys_forwarded_for_names_the_client_the_throttle_counts(
    behind_proxy: World,
) -> None:
    statuses = [await _failed_sign_in(behind_proxy, CLIENT_A) for _ in range(PER_MINUTE + 1)]

    assert statuses == [401] * PER_MINUTE + [429]  # client A used up its attempts
    assert await _failed_sign_in(behind_proxy, CLIENT_B) == 401  # B, behind the same proxy
    assert await _failed_sign_in(behind_proxy, None) == 401  # the proxy's own address


async def test_an_untrusted_peers_forwarded_for_is_ignored(trusting_nobody: World) -> None:
    statuses = [
        await _failed_sign_in(trusting_nobody, f"203.0.113.{n}") for n in range(PER_MINUTE + 1)
    ]

    # Each attempt claimed another address; all came from one peer, and count as its own.
    assert statuses == [401] * PER_MINUTE + [429]
    assert await _failed_sign_in(trusting_nobody, CLIENT_B) == 429


async def test_a_spoofed_chain_behind_the_proxy_does_not_escape_the_throttle(
    behind_proxy: World,
) -> None:
    # The client writes addresses of its choosing; the proxy appends where it came from.
    spoofed = [f"10.9.8.{n}, {PROXY}, {CLIENT_A}" for n in range(PER_MINUTE + 1)]

    statuses = [await _failed_sign_in(behind_proxy, chain) for chain in spoofed]

    assert statuses == [401] * PER_MINUTE + [429]
    assert await _failed_sign_in(behind_proxy, CLIENT_A) == 429
    assert await _failed_sign_in(behind_proxy, f"{CLIENT_B}, {CLIENT_A}") == 429
    assert await _failed_sign_in(behind_proxy, CLIENT_B) == 401


async def test_the_access_log_names_the_client_behind_a_trusted_proxy(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        settings.replace(trusted_proxies=(ipaddress.ip_network(PROXY),)),
        passwords=fast_passwords(),
    )
    runner = await serving.start(app, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with ClientSession() as session:
                headers = {"X-Forwarded-For": f"10.9.8.7, {CLIENT_A}"}
                async with session.get(f"http://127.0.0.1:{port}/login", headers=headers) as got:
                    assert got.status == 200
    finally:
        await runner.cleanup()

    lines = [r.getMessage() for r in caplog.records if '"GET /login"' in r.getMessage()]
    assert lines and lines[0].startswith(f'{CLIENT_A} "GET /login"'), lines


TRUSTED = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("192.0.2.1", [CLIENT_A], "192.0.2.1"),  # an untrusted peer speaks for itself
        ("127.0.0.1", [], "127.0.0.1"),  # the proxy's own request
        ("127.0.0.1", [CLIENT_A], CLIENT_A),
        ("127.0.0.1", [f"{CLIENT_B}, {CLIENT_A}"], CLIENT_A),  # B is the client's own word
        ("127.0.0.1", [CLIENT_B, CLIENT_A], CLIENT_A),  # two headers: one list, in order
        ("127.0.0.1", [f"{CLIENT_A}, 10.1.2.3"], CLIENT_A),  # through two trusted proxies
        ("127.0.0.1", ["10.7.7.7, 10.1.2.3"], "10.7.7.7"),  # a client on a trusted network
        ("127.0.0.1", ["not-an-address"], "127.0.0.1"),  # nothing better known
        ("127.0.0.1", [f"{CLIENT_A}, garbage, 10.1.2.3"], "10.1.2.3"),
        ("127.0.0.1", [f"[2001:db8::1]:443, {CLIENT_A}:5060"], CLIENT_A),
        ("::ffff:127.0.0.1", ["2001:db8::1"], "2001:db8::1"),  # a dual-stack socket's peer
        ("::ffff:192.0.2.1", [CLIENT_A], "192.0.2.1"),
        (None, [CLIENT_A], "unknown"),
    ],
)
def test_the_client_is_the_right_most_address_no_trusted_proxy_stands_at(
    peer: str | None, forwarded_for: list[str], client: str
) -> None:
    assert believed_client(peer, forwarded_for, TRUSTED) == client


def test_nothing_is_believed_when_no_proxy_is_trusted() -> None:
    assert believed_client("127.0.0.1", [CLIENT_A], ()) == "127.0.0.1"
