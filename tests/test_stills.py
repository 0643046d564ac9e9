"""ID stills over HTTP: an officer's JPEG of the applicant in the call is sealed into the
session record (only its hash in the log) and shown to both officers until the interview
is over; anything else is refused clearly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from common.errors import Conflict
from server.appkeys import STILLS
from server.live_stills import MAX_STILLS_PER_INTERVIEW, LiveStills
from signalling import messages as m

from .calls import applicant_in_call
from .fakes import Client, World, error_message, jpeg_image

JPEG = {"Content-Type": "image/jpeg"}


async def test_a_still_is_sealed_in_the_record_and_shown_to_both_officers(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, keys = recorded
    async with applicant_in_call(world) as call:
        interview_id, cbsa, cbp = call.interview_id, call.cbsa, call.cbp
        image = jpeg_image(640, 480)
        path = f"/api/interviews/{interview_id}/stills"
        captured = await cbsa.post(path, data=image, headers=JPEG)
        assert captured.status == 201
        assert await captured.json() == {"number": 1, "agency": "CBSA"}

        shown = await cbp.get(f"/api/interviews/{interview_id}/stills/1")
        assert shown.status == 200 and await shown.read() == image
        listing = await (await cbp.get(f"/api/interviews/{interview_id}")).json()
        assert listing["stills"] == [{"number": 1, "agency": "CBSA"}]

        session = world.settings.data_dir / "records" / interview_id
        sealed = (session / "still-001.jpg.age").read_bytes()
        assert image not in sealed
        events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
        [event] = [event for event in events if event["kind"] == "still"]
        assert event["sha256"] == hashlib.sha256(sealed).hexdigest()
    age = shutil.which("age")
    assert age, "the age command is missing: `make test` installs it"
    opened = await asyncio.to_thread(
        subprocess.run,
        [age, "-d", "-i", str(keys["cbp"]), str(session / "still-001.jpg.age")],
        capture_output=True,
        check=True,
    )
    assert opened.stdout == image


async def decide(client: Client, interview_id: str, code: str) -> None:
    body = {"verdict": "refer", "reason_codes": [code], "notes": ""}
    decided = await client.post(f"/api/interviews/{interview_id}/decision", json=body)
    assert decided.status == 201, await decided.text()


async def test_the_stills_outlive_the_call_and_go_once_both_agencies_have_decided(
    world: World,
) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa, cbp = call.interview_id, call.cbsa, call.cbp
        path = f"/api/interviews/{interview_id}/stills"
        assert (await cbsa.post(path, data=jpeg_image(), headers=JPEG)).status == 201
        stills = world.server.app[STILLS]
        assert await call.end() == m.Ended(by="cbsa", next="done")
    assert stills.listing(interview_id)  # kept after the call, for the decisions
    await decide(cbsa, interview_id, "CA-OTH")
    assert stills.listing(interview_id)  # the CBP officer has yet to decide, and may look
    assert list(stills.directory.glob(f"{interview_id}.*/*"))
    await decide(cbp, interview_id, "US-OTH")
    assert stills.listing(interview_id) == []
    assert not list(stills.directory.glob(f"{interview_id}.*"))
    gone = await cbsa.get(f"/api/interviews/{interview_id}/stills/1")
    assert gone.status == 404


async def test_live_stills_read_back_what_was_written_and_nothing_swapped(
    tmp_path: Path,
) -> None:
    stills = LiveStills(tmp_path / "live-stills")
    first, second = jpeg_image(64, 48), jpeg_image(32, 24)
    assert (await stills.add("iv_1", "CBSA", first)).still.number == 1
    assert (await stills.add("iv_1", "CBP", second)).still.number == 2
    assert await stills.jpeg("iv_1", 2) == second
    [directory] = (tmp_path / "live-stills").iterdir()
    one, two = sorted(directory.iterdir())
    sealed_one = one.read_bytes()
    one.write_bytes(two.read_bytes())  # a file moved into another's place does not open
    with pytest.raises(InvalidTag):
        await stills.jpeg("iv_1", 1)
    one.write_bytes(sealed_one)
    assert await stills.jpeg("iv_1", 1) == first


async def test_live_stills_delete_what_a_previous_run_left_and_all_when_closed(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "live-stills"
    (directory / "iv_old.1234").mkdir(parents=True)
    (directory / "iv_old.1234" / "still-001.sealed").write_bytes(b"sealed under a lost key")
    stills = LiveStills(directory)
    assert not directory.exists()
    await stills.add("iv_1", "CBSA", jpeg_image())
    assert [p.name.split(".")[0] for p in directory.iterdir()] == ["iv_1"]
    stills.close()
    stills.close()
    assert list(directory.iterdir()) == []
    with pytest.raises(Conflict):
        await stills.add("iv_1", "CBSA", jpeg_image())


async def test_live_stills_without_a_directory_keep_a_private_one_and_remove_it() -> None:
    stills = LiveStills()
    await stills.add("iv_1", "CBSA", jpeg_image())
    made = stills.directory
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    stills.close()
    assert not made.exists()


async def test_what_is_not_a_jpeg_or_too_big_is_refused_and_nothing_is_kept(
    world: World,
) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa = call.interview_id, call.cbsa
        path = f"/api/interviews/{interview_id}/stills"
        png = await cbsa.post(path, data=b"\x89PNG\r\n", headers={"Content-Type": "image/png"})
        assert png.status == 400 and "JPEG" in error_message(await png.json())
        cut = await cbsa.post(path, data=jpeg_image()[:-20], headers=JPEG)
        assert error_message(await cut.json()) == "the still is not a complete JPEG image"
        huge = await cbsa.post(path, data=b"\xff\xd8\xff" + bytes(5 * 1024 * 1024), headers=JPEG)
        assert huge.status == 413
        assert world.server.app[STILLS].listing(interview_id) == []
        word = await cbsa.get(f"/api/interviews/{interview_id}/stills/first")
        assert word.status == 400


async def test_an_interview_keeps_at_most_a_dozen_stills(world: World) -> None:
    async with applicant_in_call(world) as call:
        interview_id, cbsa = call.interview_id, call.cbsa
        path = f"/api/interviews/{interview_id}/stills"
        for n in range(MAX_STILLS_PER_INTERVIEW):
            assert (await cbsa.post(path, data=jpeg_image(64 + 8 * n), headers=JPEG)).status == 201
        refused = await cbsa.post(path, data=jpeg_image(32), headers=JPEG)
        assert refused.status == 409
        assert "already has 12 ID stills" in error_message(await refused.json())


async def test_the_same_still_sent_twice_is_kept_once_and_answered_with_its_number(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, _ = recorded
    async with applicant_in_call(world) as call:
        interview_id, cbsa, cbp = call.interview_id, call.cbsa, call.cbp
        path = f"/api/interviews/{interview_id}/stills"
        image = jpeg_image(640, 480)
        first = await cbsa.post(path, data=image, headers=JPEG)
        assert first.status == 201
        again = await cbsa.post(path, data=image, headers=JPEG)
        assert again.status == 200
        assert await again.json() == await first.json() == {"number": 1, "agency": "CBSA"}
        assert world.server.app[STILLS].listing(interview_id) == [{"number": 1, "agency": "CBSA"}]
        session = world.settings.data_dir / "records" / interview_id
        kinds = [
            json.loads(line)["kind"] for line in (session / "events.jsonl").read_text().splitlines()
        ]
        assert kinds.count("still") == 1
        assert [p.name for p in session.glob("still-*")] == ["still-001.jpg.age"]

        other = await cbp.post(path, data=jpeg_image(320, 240), headers=JPEG)
        assert other.status == 201 and (await other.json())["number"] == 2


async def test_live_stills_keep_one_of_identical_stills_sent_at_once(tmp_path: Path) -> None:
    stills = LiveStills(tmp_path / "live-stills")
    image = jpeg_image()
    kept = await asyncio.gather(*(stills.add("iv_1", "CBSA", image) for _ in range(3)))
    assert [k.still.number for k in kept] == [1, 1, 1]
    assert sorted(k.new for k in kept) == [False, False, True]
    assert stills.listing("iv_1") == [{"number": 1, "agency": "CBSA"}]
    assert len(list((tmp_path / "live-stills").glob("*/*"))) == 1
    assert (await stills.add("iv_1", "CBP", jpeg_image(32, 24))).still.number == 2
