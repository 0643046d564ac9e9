from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.settings import Settings, load_settings
from server.store import Store

from .fakes import FakeClock, World, fast_passwords


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({}, {"data_dir": str(tmp_path / "data")})


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
