"""Lines logged while a signalling message is handled carry the interview's id, like
those of an HTTP request for one: on a socket, the id is in the message or the call the
socket joined, not in the address. An in-process server and its real sockets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from common.logs import JsonFormatter
from common.names import Seat
from signalling import messages as m

from .calls import join, seated_interview
from .fakes import World


@pytest.fixture
def json_lines() -> Iterator[list[dict[str, object]]]:
    """Every line logged at INFO or above, as `NEXUS_LOG_FORMAT=json` writes it."""
    lines: list[dict[str, object]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    handler = Collect(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_a_participants_connection_path_is_logged_with_the_interview_id(
    world: World, json_lines: list[dict[str, object]]
) -> None:
    seated, interview_id = await seated_interview(world)
    applicant = seated[Seat.APPLICANT]
    await join(applicant, interview_id)
    json_lines.clear()

    await applicant.ws.send_str(m.encode(m.ConnectionPath(path="relayed", protocol="tls")))
    # a socket's messages are handled in order: once the next is answered, it was handled
    assert isinstance(await applicant.ask("{}"), m.Error)

    [line] = [line for line in json_lines if "media goes" in str(line["message"])]
    assert line["message"] == "the applicant's media goes relayed (tls)"
    assert line["interview_id"] == interview_id
