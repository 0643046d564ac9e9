"""Structured logs (``NEXUS_LOG_FORMAT=json``): every line the server and its media worker
write is one JSON object with time, level, logger and message, and the request's id
(the caller's X-Request-Id if it is a safe one, else a new one, returned either way) and
the interview's id when known; the applicant's token never appears, in the path or passed
off as a request id.

A real `nexus-interview serve` process with a media worker process on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

import aiohttp
from yarl import URL

from common.logs import INTERVIEW_ID, REQUEST_ID, JsonFormatter

from . import served
from .served import Scene, call_started, free_port, serve, server_log, stop, up
from .test_health import readiness_becomes

scene = served.scene  # the fixture: a data directory, officers, an invitation

PROXY_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


async def applicant_link(base: URL, token: str, request_id: str) -> str:
    """Open the applicant's link sending ``request_id``; the id the server answers with."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(base / "i" / token, headers={"X-Request-Id": request_id}) as response,
    ):
        assert response.status == 200
        return response.headers["X-Request-Id"]


async def test_json_lines_carry_request_and_interview_ids_and_never_the_token(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    port = free_port()
    server = serve(
        settings, media_workers="1", log_format="json", metrics_listen=f"127.0.0.1:{port}"
    )
    browsers = {}
    try:
        await up(settings, server)
        await readiness_becomes(f"http://127.0.0.1:{port}", 200)  # the worker has joined
        assert await applicant_link(base, scene.token, PROXY_ID) == PROXY_ID
        # a token passed off as a request id is not taken (nor logged): a new id is made
        made = await applicant_link(base, scene.token, scene.token)
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
        browsers = await call_started(scene, base)
    finally:
        for browser in browsers.values():
            await browser.close()
        stop(server)

    text = server_log(settings).read_text()
    assert scene.token not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    by_proxy = [line for line in lines if line.get("request_id") == PROXY_ID]
    assert len(by_proxy) == 1
    assert by_proxy[0]["logger"] == "aiohttp.access"
    assert "/i/<redacted>" in by_proxy[0]["message"]
    assert any(line.get("request_id") == made for line in lines)
    taken = [line for line in lines if "/take" in line["message"]]
    assert taken and all(line["interview_id"] == scene.interview_id for line in taken)
    # the media worker process logs in the same form
    assert any(line["logger"] == "media.worker_process" for line in lines)


def record(message: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("server.x", logging.ERROR, __file__, 1, message, args, None)


def test_a_json_line_has_the_ids_set_in_its_context_and_only_those() -> None:
    formatter = JsonFormatter()
    plain = json.loads(formatter.format(record("nothing %s", "known")))
    assert plain["message"] == "nothing known"
    assert plain["level"] == "ERROR" and plain["logger"] == "server.x"
    assert "request_id" not in plain and "interview_id" not in plain
    ids = REQUEST_ID.set("abc12345"), INTERVIEW_ID.set("iv_0123456789abcdef")
    try:
        line = json.loads(formatter.format(record("with ids")))
    finally:
        INTERVIEW_ID.reset(ids[1])
        REQUEST_ID.reset(ids[0])
    assert line["request_id"] == "abc12345"
    assert line["interview_id"] == "iv_0123456789abcdef"


def test_a_json_line_is_one_line_even_with_a_traceback() -> None:
    try:
        raise ValueError("a\nb")
    except ValueError:
        failed = logging.LogRecord(
            "server.x", logging.ERROR, __file__, 1, "broke\nhere", (), sys.exc_info()
        )
    text = JsonFormatter().format(failed)
    assert "\n" not in text
    assert "ValueError" in json.loads(text)["exception"]
