"""A page that goes while the server answers it: the answer is dropped, nothing raised
(a traceback in the log for what is a page closing, as pages do)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp import ClientConnectionResetError, web

from server.views.call_socket import Connection
from signalling import messages as m


class ClosingSocket:
    """A WebSocket whose transport went as a message was being sent: the edge aiohttp
    reaches when the page's TCP connection closes under a send (a test cannot time a
    real one to land inside `send_str`)."""

    closed = False

    async def send_str(self, data: str) -> None:
        raise ClientConnectionResetError("Cannot write to closing transport")


async def test_an_answer_to_a_page_that_just_went_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unused = cast(Any, None)
    ws = cast(web.WebSocketResponse, ClosingSocket())
    connection = Connection(unused, unused, unused, unused, ws, unused, unused)
    await connection.send(m.Error(code="x", message="y"))
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "WARNING")]
