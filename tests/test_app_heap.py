"""The running server keeps what it started with out of the garbage collector's walks."""

from __future__ import annotations

import gc

from aiohttp.test_utils import TestServer

from server.app import create_app
from server.settings import Settings


async def test_the_startup_heap_is_frozen_while_the_server_runs(settings: Settings) -> None:
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert gc.get_freeze_count() > 10_000  # modules, routes, catalogs
        assert not any(thing is app for thing in gc.get_objects())  # not walked again
    finally:
        await server.close()
    assert gc.get_freeze_count() == 0
