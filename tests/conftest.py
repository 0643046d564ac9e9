from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvloop
from aiohttp.test_utils import TestServer

from media.address_policy import EVERY_NETWORK
from recordings.keys import Identity, write_identity_file
from server.app import create_app
from server.settings import Settings, load_settings
from server.store import Store

from .audit_scene import AuditScene, audit_scene
from .fakes import FakeClock, World, fast_passwords


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on the loop the servers run on by default (`server.serving.loop_factory`)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Defaults, with a data directory of the test's own; the test peers (aiortc and
    Chromium on this machine) have loopback, private or reserved addresses only. The media
    stays in the server's process (through the same media-plane protocol): tests of worker
    processes ask for them."""
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "media_peer_networks": EVERY_NETWORK,
        "media_workers": "0",
    }
    return load_settings({}, overrides)


@pytest.fixture
async def store(settings: Settings, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store(settings.database_path, clock).open()
    yield opened
    await opened.close()


@pytest.fixture
async def world(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    passwords = fast_passwords()
    server = TestServer(create_app(settings, clock, passwords), host="127.0.0.1")
    await server.start_server()
    running = World(server, settings, clock, passwords)
    yield running
    for client in running.clients:
        await client.close()
    await server.close()


def with_recipients(settings: Settings, keys: Path) -> tuple[Settings, dict[str, Path]]:
    """``settings`` recording to new CBSA, CBP and audit-body recipients; their identity
    files (which the server never sees), written under ``keys``, for tests to decrypt with."""
    identities = {}
    for holder in ("cbsa", "cbp", "audit"):
        identity = Identity.generate()
        path = keys / f"{holder}.txt"
        write_identity_file(path, identity)
        identities[holder] = (identity, path)
    configured = settings.replace(
        **{f"{h}_recipient": str(i.recipient) for h, (i, _) in identities.items()}
    )
    return configured, {holder: path for holder, (_, path) in identities.items()}


@pytest.fixture
async def recorded(
    tmp_path: Path, settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[World, dict[str, Path]]]:
    """A server that records, and the recipients' identity files."""
    configured, keys = with_recipients(settings, tmp_path / "agency-keys")
    server = TestServer(create_app(configured, clock, fast_passwords()), host="127.0.0.1")
    await server.start_server()
    world = World(server, configured, clock, fast_passwords())
    yield world, keys
    for client in world.clients:
        await client.close()
    await server.close()


@pytest.fixture
async def scene(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> AsyncIterator[AuditScene]:
    """A recorded, decided interview and an audit console over it."""
    world, keys = recorded
    async with audit_scene(world, keys, tmp_path) as built:
        yield built
