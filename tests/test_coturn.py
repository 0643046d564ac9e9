"""A real coturn, configured by `nexus-interview turn-config`, accepts the credentials
joins get and relays only to the media workers.

Four machines on one switch (tests/netns.py): ``turn`` runs coturn on 3478 and, with TLS,
on 443, as deployed; ``media`` is a media worker (a UDP echo), the one peer the config
allows; ``stranger`` is any other host the relay must never reach; ``browser`` is the
applicant's side, speaking TURN through aioice's client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol, create_turn_endpoint

from common.secret import Secret
from server.turn import TurnCredential, mint
from tests.certificates import TestCA
from tests.coturn import ECHO_PORT, Inbox, echo, listening, permission_codes, start_coturn
from tests.netns import Machine, Network, in_namespace

SECRET = "coturn-test-secret-" + os.urandom(16).hex()
REALM = "turn.nexus.test"


@dataclass
class Relay:
    turn: Machine
    media: Machine
    stranger: Machine
    browser: Machine
    ca: TestCA  # the browser side trusts it alone
    log: Path


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    if shutil.which("turnserver") is None:
        pytest.fail("these tests drive a real coturn: install Debian's coturn (`make heavy` does)")
    directory = tmp_path_factory.mktemp("coturn")
    with Network() as network:
        turn, media = network.machine("turn"), network.machine("media")
        stranger, browser = network.machine("stranger"), network.machine("browser")
        ca = TestCA.create(directory / "ca")
        cert = ca.issue("turn", turn.address)
        log = start_coturn(turn, directory, SECRET, REALM, media.address, cert)
        for machine in (media, stranger):
            machine.thread().submit(echo(machine.address)).result(timeout=10)
        in_namespace(browser, listening, turn.address, 443, 10)
        in_namespace(browser, listening, turn.address, 3478, 10)
        yield Relay(turn, media, stranger, browser, ca, log)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _credential(who: str = "iv_0123456789abcdef-applicant") -> TurnCredential:
    return mint(Secret(SECRET), who, _now(), 600)


async def _relay_to_media(
    relay: Relay, credential: TurnCredential, transport: str, port: int
) -> tuple[tuple[str, int], bytes, tuple[str, int]]:
    """Allocate, send to the media worker through the relay and read its echo: (relayed
    address, echo, where the echo came from)."""
    context = None
    if transport == "tcp":
        context = relay.ca.client_context()
    endpoint, inbox = await create_turn_endpoint(
        Inbox,
        (relay.turn.address, port),
        credential.username,
        credential.password.reveal(),
        ssl=context,
        transport=transport,
    )
    try:
        relayed = endpoint.get_extra_info("sockname")
        endpoint.sendto(b"hello", (relay.media.address, ECHO_PORT))
        data, source = await asyncio.wait_for(inbox.received.get(), 5)
        return relayed, data, source
    finally:
        endpoint.close()
        await asyncio.sleep(0.1)  # the allocation's deletion goes out


def _assert_a_minted_credential_relays_to_media(relay: Relay, transport: str, port: int) -> None:
    relayed, data, source = in_namespace(
        relay.browser, _relay_to_media, relay, _credential(), transport, port
    )

    assert relayed[0] == relay.turn.address
    assert data == b"echo:hello"
    assert source == (relay.media.address, ECHO_PORT)


def test_a_minted_credential_opens_a_relay_to_a_media_worker_over_udp(relay: Relay) -> None:
    _assert_a_minted_credential_relays_to_media(relay, "udp", 3478)


def test_a_minted_credential_opens_a_relay_over_tls_on_443(relay: Relay) -> None:
    _assert_a_minted_credential_relays_to_media(relay, "tcp", 443)


async def _allocate(relay: Relay, username: str, password: str) -> TurnClientUdpProtocol:
    server = (relay.turn.address, 3478)
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server, username=username, password=password, lifetime=600, channel_refresh_time=500
        ),
        remote_addr=server,
    )
    await protocol.connect()
    return protocol


async def _allocation_refused(relay: Relay, username: str, password: str) -> int | None:
    """The error code coturn answers an Allocate with, or None if it made one."""
    try:
        protocol = await _allocate(relay, username, password)
    except stun.TransactionFailed as refused:
        return refused.response.error_code
    await protocol.delete()
    return None


def test_an_expired_credential_is_refused(relay: Relay) -> None:
    expired = mint(Secret(SECRET), "who", _now() - dt.timedelta(seconds=120), 60)

    code = in_namespace(
        relay.browser, _allocation_refused, relay, expired.username, expired.password.reveal()
    )

    assert code in (401, 438)


def test_a_forged_or_stretched_credential_is_refused(relay: Relay) -> None:
    forged = mint(Secret("another-secret-of-at-least-32-chars!"), "who", _now(), 600)
    genuine = _credential("who")
    expiry, _, who = genuine.username.partition(":")
    stretched = f"{int(expiry) + 86400}:{who}"  # a day longer, same password

    for username, password in (
        (forged.username, forged.password.reveal()),
        (stretched, genuine.password.reveal()),
        (genuine.username, ""),
    ):
        code = in_namespace(relay.browser, _allocation_refused, relay, username, password)
        assert code == 401, username
    assert (
        in_namespace(
            relay.browser, _allocation_refused, relay, genuine.username, genuine.password.reveal()
        )
        is None
    )


async def _permissions(relay: Relay, peers: list[str], wait: float = 0) -> dict[str, int | None]:
    """Per peer address, the error code of a CreatePermission (None: granted), on one
    allocation made with a fresh credential; ``wait`` seconds pass between the two."""
    credential = mint(Secret(SECRET), "who", _now(), 2 if wait else 600)
    protocol = await _allocate(relay, credential.username, credential.password.reveal())
    await asyncio.sleep(wait)
    return await permission_codes(protocol, peers, ECHO_PORT)


def test_the_relay_reaches_the_media_workers_and_nothing_else(relay: Relay) -> None:
    peers = [
        relay.media.address,
        relay.stranger.address,
        relay.browser.address,
        relay.turn.address,
        "127.0.0.1",
        "127.0.0.53",
        "0.0.0.0",
        "8.8.8.8",
        "10.0.0.1",
        "169.254.169.254",
    ]

    codes = in_namespace(relay.browser, _permissions, relay, peers)

    assert codes[relay.media.address] is None
    refused = {peer: code for peer, code in codes.items() if peer != relay.media.address}
    assert refused == dict.fromkeys(refused, 403)


async def _echoes(relay: Relay, peers: list[str]) -> set[tuple[str, int]]:
    """Who answers, within a second, what one allocation sends to each of ``peers``."""
    credential = _credential()
    endpoint, inbox = await create_turn_endpoint(
        Inbox, (relay.turn.address, 3478), credential.username, credential.password.reveal()
    )
    try:
        for peer in peers:
            endpoint.sendto(b"hello", (peer, ECHO_PORT))
        await asyncio.sleep(1)
        sources = set()
        while not inbox.received.empty():
            sources.add(inbox.received.get_nowait()[1])
        return sources
    finally:
        endpoint.close()
        await asyncio.sleep(0.1)


def test_what_is_sent_through_the_relay_reaches_the_media_worker_alone(relay: Relay) -> None:
    peers = [relay.stranger.address, relay.media.address]

    answered = in_namespace(relay.browser, _echoes, relay, peers)

    assert answered == {(relay.media.address, ECHO_PORT)}


def test_an_allocation_outlives_the_credential_that_opened_it(relay: Relay) -> None:
    # The credential expires two seconds after the allocation; a call lasts longer, and
    # coturn keeps honouring the allocation's requests (permissions, refreshes).
    codes = in_namespace(relay.browser, _permissions, relay, [relay.media.address], 3)

    assert codes == {relay.media.address: None}


def test_coturn_logs_neither_the_secret_nor_a_password(relay: Relay) -> None:
    credential = _credential("iv_0123456789abcdef-cbp")
    in_namespace(relay.browser, _relay_to_media, relay, credential, "udp", 3478)

    log = relay.log.read_text("utf-8", errors="replace")
    assert f"Relay address to use: {relay.turn.address}" in log  # coturn's own output
    assert SECRET not in log
    assert credential.password.reveal() not in log
