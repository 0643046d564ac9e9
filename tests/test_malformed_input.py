"""Malformed input at the HTTP edge: numbers that are not plain digits, absurd file names,
oversized or cut-short form bodies and stills that are not JPEG images. Each gets a 4xx
with a message and the security headers; nothing is logged at ERROR."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, web
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import BadRequest
from server.app import create_app
from server.appkeys import STILLS
from server.jpeg import MAX_SIDE, JpegError, check_jpeg
from server.middleware import SECURITY_HEADERS
from server.settings import Settings
from server.views.whole_numbers import MAX_DIGITS, whole_number

from .audit_scene import AuditScene, sign_in
from .calls import applicant_in_call
from .fakes import FakeClock, World, error_message, fast_passwords, jpeg_image
from .test_stills import JPEG

# "²" passes str.isdigit() but not int(); 5,000 digits pass both checks but exceed
# int()'s limit on decimal strings; U+0661 (Arabic-Indic one) is a digit, just not ASCII.
NOT_NUMBERS = ("²", "5" * 5000, "\u0661")
FORM = "application/x-www-form-urlencoded"


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


def has_security_headers(headers: object) -> bool:
    assert hasattr(headers, "get")
    return all(headers.get(name) == value for name, value in SECURITY_HEADERS.items())


async def refused(response: ClientResponse, status: int, message: str) -> None:
    assert response.status == status, await response.text()
    if response.content_type == "application/json":
        assert error_message(await response.json()) == message
    else:
        assert message in await response.text()
    assert has_security_headers(response.headers)


async def test_a_still_number_that_is_not_plain_digits_is_a_400(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa = call.interview_id, call.cbsa
        path = f"/api/interviews/{interview_id}/stills"
        assert (await cbsa.post(path, data=jpeg_image(), headers=JPEG)).status == 201
        for number in NOT_NUMBERS:
            response = await cbsa.get(f"{path}/{quote(number)}")
            await refused(response, 400, "a still is named by its number")
    assert errors_logged(caplog) == []


async def test_an_audit_page_number_that_is_not_plain_digits_is_a_400(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = await world.client()
    await world.sign_in(client, await world.add_auditor("auditor.one"))
    for page in NOT_NUMBERS:
        for path in ("/audit", "/api/audit/interviews"):
            response = await client.get(path, params={"page": page})
            await refused(response, 400, "page must be a whole number from 1")
    assert errors_logged(caplog) == []


async def test_an_audit_console_still_number_that_is_not_plain_digits_is_a_400(
    scene: AuditScene, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    assert (await client.get(f"/stills/{scene.interview_id}/1")).status == 200
    for number in NOT_NUMBERS:
        response = await client.get(f"/stills/{scene.interview_id}/{quote(number)}")
        await refused(response, 400, "a still is named by its number")
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("name", ["a" * 300, "a/" * 3000])
async def test_a_static_file_name_too_long_for_the_file_system_is_a_404(
    world: World, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    client = await world.client()
    response = await client.get(f"/static/{name}")
    await refused(response, 404, "there is nothing at this address")
    assert errors_logged(caplog) == []


async def raw_exchange(port: int, request: bytes, within: float = 5.0) -> tuple[int, str]:
    """Send ``request`` as is (perhaps only part of what its headers announce); the
    status and head of the answer, which must come ``within`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    finally:
        writer.close()
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1")


async def test_an_oversized_form_is_refused_by_its_length_before_it_is_read(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the head and a few bytes of a 4 MB form are sent: the answer cannot wait for
    the rest of it."""
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: 4000000\r\n\r\n"
    )
    status, answer = await raw_exchange(world.server.port or 0, head.encode() + b"csrf_token=")
    assert status == 413
    assert all(f"{name}: {value}" in answer for name, value in SECURITY_HEADERS.items())
    assert errors_logged(caplog) == []


async def test_an_oversized_form_without_a_length_is_refused_once_past_the_limit(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"csrf_token=x&username="
        for _ in range(100):
            yield b"a" * 1024

    client = await world.client()
    response = await client.post("/login", data=chunks(), headers={"Content-Type": FORM})
    await refused(response, 413, "the request body is larger than 65536 bytes")
    assert errors_logged(caplog) == []


async def test_a_form_that_does_not_inflate_is_a_400(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = await world.client()
    response = await client.post(
        "/login",
        data=b"csrf_token=not gzip at all",
        headers={"Content-Type": FORM, "Content-Encoding": "gzip"},
    )
    await refused(response, 400, "the request body could not be read")
    # aiohttp itself logs the broken stream once more when it drains it after the answer
    ours = [r for r in caplog.records if not r.name.startswith("aiohttp.")]
    assert [r.getMessage() for r in ours if r.levelno >= logging.ERROR] == []


@pytest.fixture
async def production_server(settings: Settings, clock: FakeClock) -> AsyncIterator[int]:
    """The app as `web.run_app` runs it: a handler is not cancelled when its client goes."""
    runner = web.AppRunner(create_app(settings, clock, fast_passwords()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_a_client_that_leaves_in_the_middle_of_a_form_is_not_an_error(
    production_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    reader, writer = await asyncio.open_connection("127.0.0.1", production_server)
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: 4000\r\n\r\n"
    )
    writer.write(head.encode() + b"csrf_token=abc&user")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not any(r.name == "aiohttp.access" for r in caplog.records):
        assert loop.time() < deadline, "the server never finished the request"
        await asyncio.sleep(0.02)
    assert errors_logged(caplog) == []
    del reader


async def test_a_still_that_does_not_decode_as_a_jpeg_image_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa = call.interview_id, call.cbsa
        path = f"/api/interviews/{interview_id}/stills"
        fake = await cbsa.post(path, data=b"\xff\xd8\xff\xff\xd9", headers=JPEG)
        await refused(fake, 400, "the still is not a JPEG image that can be decoded")
        wide = await cbsa.post(path, data=jpeg_image(8200, 16), headers=JPEG)
        await refused(wide, 400, "the still is 8200x16 pixels; at most 8192 on each side")
        assert world.server.app[STILLS].listing(interview_id) == []
    assert errors_logged(caplog) == []


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


async def test_a_still_is_kept_on_disk_only_encrypted_and_deleted_once_both_decided(
    recorded: tuple[World, dict[str, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    world, _ = recorded
    async with applicant_in_call(world) as call:
        interview_id, cbsa, cbp = call.interview_id, call.cbsa, call.cbp
        image = jpeg_image(320, 240)
        stills_path = f"/api/interviews/{interview_id}/stills"
        captured = await cbsa.post(stills_path, data=image, headers=JPEG)
        assert captured.status == 201

        stills = world.server.app[STILLS]
        [kept] = stills.directory.glob(f"{interview_id}.*")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o700
        [sealed] = files_under(kept)
        assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
        assert len(sealed.read_bytes()) > len(image)  # the whole still, sealed
        for path in files_under(world.settings.data_dir, stills.directory):
            assert image not in path.read_bytes(), path
            assert image[-4096:] not in path.read_bytes(), path
        shown = await cbp.get(f"{stills_path}/1")
        assert shown.status == 200 and await shown.read() == image

        await call.end()
    for client, code in ((cbsa, "CA-OTH"), (cbp, "US-OTH")):
        body = {"verdict": "refer", "reason_codes": [code], "notes": ""}
        decided = await client.post(f"/api/interviews/{interview_id}/decision", json=body)
        assert decided.status == 201
    assert not kept.exists()
    assert (await cbp.get(f"/api/interviews/{interview_id}/stills/1")).status == 404
    assert errors_logged(caplog) == []


@given(raw=st.text(max_size=12) | st.from_regex(r"[0-9]{1,12}", fullmatch=True))
def test_a_whole_number_is_plain_digits_within_bounds_or_a_400(raw: str) -> None:
    plain = raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS
    if plain and 1 <= int(raw) <= 500:
        assert whole_number(raw, "not a number", low=1, high=500) == int(raw)
    else:
        with pytest.raises(BadRequest, match=r"^not a number$"):
            whole_number(raw, "not a number", low=1, high=500)


REAL_JPEG = jpeg_image(48, 32)


@settings(max_examples=300, deadline=None)
@given(
    cut=st.integers(0, len(REAL_JPEG)),
    flips=st.lists(st.tuples(st.integers(0, len(REAL_JPEG) - 1), st.integers(1, 255))),
    noise=st.binary(max_size=64),
)
def test_a_damaged_jpeg_decodes_within_bounds_or_is_refused_with_a_reason(
    cut: int, flips: list[tuple[int, int]], noise: bytes
) -> None:
    data = bytearray(REAL_JPEG)
    for at, mask in flips:
        data[at] ^= mask
    for candidate in (bytes(data), bytes(data[:cut]) + noise + b"\xff\xd9", noise):
        try:
            width, height = check_jpeg(candidate)
        except JpegError:
            continue  # refused, with a message for the officer
        assert 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE
