"""When a session record is complete: its interview closed (a close, no-show, cancellation
or interruption: a call step's ``end`` is not one), nothing follows the close, and every
witness given cosigned the checkpoint ending at it. Real interviews through the server,
taken to two real witness apps on 127.0.0.1 as they go; a record rolled back to a step's
end (the later events and checkpoints removed, the earlier cosignatures intact) is then
told from a whole one."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from common.names import Agency, RoomId, Seat
from recordings.keys import Identity
from recordings.session_record import CHECKPOINTS, EVENTS, Verification, verify_session
from recordings.tlog import NoteVerifier
from recordings.witness_keys import parse_witness_key
from recordings.witness_protocol import CosignatureVerifier, Cosigner, cosignatures
from server.appkeys import LIVES, RECORDS, WITNESSING
from server.audit_app import create_audit_app
from server.settings import Settings
from server.types import InterviewMode
from server.witnessing import newest_checkpoint
from signalling import messages as m

from .audit_scene import AuditScene, checked, sign_in
from .calls import applicant_in_call, waiting_applicant
from .fakes import (
    FakeClock,
    World,
    add_applications,
    application,
    fast_passwords,
    nexus_interview,
)
from .media import SyntheticParticipant
from .test_two_step_stills import applicant_joins, decide, end_call, join_call, officer, take
from .test_witnessing_wired import cosigners, server, witnesses

Settled = Callable[[World], Awaitable[None]]
Completed = subprocess.CompletedProcess[str]


async def settled(world: World) -> None:
    """What the interview wrote is in its record, and each witness answered for it."""
    app = world.server.app
    await app[LIVES].drain()
    witnessing = app[WITNESSING]
    assert witnessing is not None
    await witnessing.settled()


def cosigned_by(verifier_key: str) -> Settled:
    """What the interview wrote is in its record, and the one witness of ``verifier_key``
    (the other is down) cosigned the newest checkpoint of each interview's record."""

    async def wait(world: World) -> None:
        await world.server.app[LIVES].drain()
        witness = CosignatureVerifier.parse(verifier_key)
        record = world.server.app[RECORDS].directory
        for _ in range(400):
            notes = [newest_checkpoint(path) for path in record.glob("iv_*")]
            held = [note for note in notes if note is not None]
            if held and all(cosignatures(note.read_bytes(), [witness]) for note in held):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{witness.name} did not cosign the newest checkpoint")

    return wait


async def joint_interview(world: World, witnessed: Settled = settled) -> Path:
    """A joint interview whose call CBSA ended, then both agencies decided (the close);
    each step witnessed before the next."""
    async with applicant_in_call(world) as call:
        await call.end(by=Seat.CBSA)
        await witnessed(world)
        for client, code in ((call.cbsa, "CA-OTH"), (call.cbp, "US-OTH")):
            decided = await client.post(
                f"/api/interviews/{call.interview_id}/decision",
                json={"verdict": "refer", "reason_codes": [code]},
            )
            assert decided.status == 201, await decided.text()
        await witnessed(world)
    return Path(world.server.app[RECORDS].directory / RoomId(call.interview_id))


async def two_step_interview(world: World) -> Path:
    """A two-step interview: CBSA's step (decided, its call ended, next: CBP), then CBP's;
    each step witnessed before the next."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001", InterviewMode.TWO_STEP)
    applicant = await waiting_applicant(world, token)
    cbsa = await officer(world, "cbsa.one", Agency.CBSA)
    cbp = await officer(world, "cbp.one", Agency.CBP)
    person = SyntheticParticipant(Seat.APPLICANT)
    try:
        await take(cbsa, interview_id)
        await applicant_joins(world, applicant, interview_id, person)
        await decide(cbsa, interview_id, "CA-OTH")
        await end_call(await join_call(world, cbsa, interview_id), then="cbp")
        await settled(world)
        await applicant.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
        await take(cbp, interview_id)
        await applicant_joins(world, applicant, interview_id, person)
        await decide(cbp, interview_id, "US-OTH")
        await end_call(await join_call(world, cbp, interview_id), then="done")
        await settled(world)
    finally:
        await person.close()
    return Path(world.server.app[RECORDS].directory / RoomId(interview_id))


def kinds(record: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in (record / EVENTS).read_bytes().splitlines()]


def cut_back_to(record: Path, size: int) -> None:
    """Roll the record back to its first ``size`` events, as someone with the disk would:
    the later events, their checkpoints and the files only they list removed; the
    checkpoint at ``size`` kept with whatever cosignatures it carries."""
    lines = (record / EVENTS).read_bytes().splitlines(keepends=True)
    kept = {json.loads(line).get("file") for line in lines[:size]}
    for line in lines[size:]:
        name = json.loads(line).get("file")
        if name and name not in kept:
            (record / name).unlink(missing_ok=True)
    (record / EVENTS).write_bytes(b"".join(lines[:size]))
    for note in (record / CHECKPOINTS).glob("*.note"):
        if int(note.stem) > size:
            note.unlink()


@asynccontextmanager
async def witnessed_server(
    settings: Settings, clock: FakeClock, tmp_path: Path, cbp_down: bool = False
) -> AsyncIterator[tuple[World, dict[str, Cosigner]]]:
    """A server with CBSA's and CBP's witnesses configured and running; with ``cbp_down``,
    CBP's is configured at an address where nothing listens."""
    keys = cosigners()
    async with witnesses(settings, tmp_path / "witnesses", keys) as entries:
        if cbp_down:
            entries = {**entries, "CBP": f"CBP=http://127.0.0.1:1={keys['CBP'].verifier_key}"}
        async with server(settings.replace(witnesses=",".join(entries.values())), clock) as world:
            yield world, keys


def verified(record: Path, world: World, keys: dict[str, Cosigner] | None) -> Verification:
    server_key = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    given = [parse_witness_key(c.verifier_key) for c in (keys or {}).values()]
    return verify_session(record, [server_key], witnesses=given)


async def test_a_joint_record_cut_back_to_its_calls_end_is_not_complete_though_cosigned(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path) as (world, keys):
        record = await joint_interview(world)
    held = kinds(record)
    end = held.index("end")
    assert held[end + 1 :] == ["decision", "decision", "close"], held
    cut_back_to(record, end + 1)  # the decisions and the close removed
    result = verified(record, world, keys)
    # the witnesses did cosign what is left: it is the step's end that does not close it
    assert sorted(result.witnessed_by) == ["cbp.test/witness", "cbsa.test/witness"]
    assert (result.complete, result.ok, result.failed) == (False, False, False)
    assert result.problems == [
        f"incomplete: the interview has not closed: no close, no-show, cancellation or "
        f"interruption follows its last event, end (event {end}); waiting for the agencies' "
        "decisions"
    ]


async def test_a_two_step_record_cut_back_to_the_cbsa_steps_end_is_not_complete(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path) as (world, keys):
        record = await two_step_interview(world)
    held = kinds(record)
    end = held.index("end")
    assert held[-1] == "close" and held[end : end + 3] == ["end", "next-step", "seat"], held
    cut_back_to(record, end + 2)  # the CBP step and the close removed
    result = verified(record, world, keys)
    assert sorted(result.witnessed_by) == ["cbp.test/witness", "cbsa.test/witness"]
    assert (result.complete, result.ok, result.failed) == (False, False, False)
    assert result.problems == [
        f"incomplete: the interview has not closed: no close, no-show, cancellation or "
        f"interruption follows its last event, next-step (event {end + 1}); waiting for its "
        "CBP step"
    ]


async def test_a_closed_record_verified_without_witness_keys_is_not_complete_and_says_why(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path) as (world, _keys):
        record = await joint_interview(world)
    result = verified(record, world, None)
    assert (result.complete, result.ok, result.failed, result.closed) == (
        False,
        False,
        False,
        True,
    )
    assert result.problems == [
        "incomplete: nobody outside the server vouches for the record's length (it could "
        "have been cut back to an earlier checkpoint): no witness key was given; pass each "
        "agency's witness key (--witness)"
    ]
    done = await asyncio.to_thread(
        nexus_interview,
        "records",
        "verify",
        str(record),
        "--key",
        world.server.app[RECORDS].signer.verifier_key,
    )
    assert done.returncode == 3 and "VERIFIED" not in done.stdout
    assert done.stderr.splitlines() == [f"FAILED: {result.problems[0]}"]


async def test_a_closed_record_missing_one_agencys_cosignature_names_that_witness(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path, cbp_down=True) as (world, keys):
        record = await joint_interview(world, cosigned_by(keys["CBSA"].verifier_key))
    size = len(kinds(record))
    result = verified(record, world, keys)
    assert (result.complete, result.ok, result.failed, result.closed) == (
        False,
        False,
        False,
        True,
    )
    assert result.witnessed_by == ["cbsa.test/witness"]
    assert result.unwitnessed == ["cbp.test/witness"]
    assert result.problems == [
        f"incomplete: the final checkpoint ({size} events, ending at the interview's close) "
        "is not yet cosigned by cbp.test/witness"
    ]


async def test_a_closed_record_both_agencies_cosigned_is_complete(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path) as (world, keys):
        record = await joint_interview(world)
    result = verified(record, world, keys)
    assert result.problems == []
    assert (result.complete, result.ok, result.closed, result.final_event) == (
        True,
        True,
        True,
        "close",
    )
    assert sorted(result.witnessed_by) == ["cbp.test/witness", "cbsa.test/witness"]


@asynccontextmanager
async def console(
    world: World, session: Path, tmp_path: Path, keys: dict[str, Cosigner] | None
) -> AsyncIterator[AuditScene]:
    """The audit console over ``world``'s records, given these witnesses' keys."""
    settings = world.settings.replace(audit_dir=tmp_path / "audit-console")
    server_key = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    given = [parse_witness_key(c.verifier_key) for c in (keys or {}).values()]
    app = create_audit_app(
        settings, [Identity.generate()], [server_key], given, world.clock, fast_passwords()
    )
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        auditor = await world.add_auditor(f"auditor.{tmp_path.name}")
        yield AuditScene(world, test_server, session, auditor)
    finally:
        await test_server.close()


async def unwitnessed_state(scene: AuditScene) -> tuple[str, dict[str, Any], str]:
    """What the console says of the session: its row on the list page, its witnessing in
    the session's data, and the status the list polls."""
    client, _ = await sign_in(scene, scene.auditor)
    polled = (await checked(client))[scene.interview_id]
    listing = await (await client.get("/sessions")).text()
    row = listing.split(f'data-session="{scene.interview_id}"')[1].split("</tr>")[0]
    data = await (await client.get(f"/api/sessions/{scene.interview_id}")).json()
    assert data["status"] == polled["status"]
    return row, data["verification"]["witnessing"], polled["status"]


async def test_the_console_shows_what_is_still_unwitnessed(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path, cbp_down=True) as (world, keys):
        record = await joint_interview(world, cosigned_by(keys["CBSA"].verifier_key))
        size = len(kinds(record))
        async with console(world, record, tmp_path / "with-keys", keys) as scene:
            row, witnessing, status = await unwitnessed_state(scene)
        assert status == "incomplete"
        assert 'data-waiting-for="cosignatures" data-unwitnessed="cbp.test/witness"' in row
        assert (
            f"incomplete: the final checkpoint ({size} events, ending at the interview&#39;s "
            "close) is not yet cosigned by cbp.test/witness"
        ) in row
        assert witnessing == {
            "closed": True,
            "final_event": "close",
            "witnesses": ["cbsa.test/witness", "cbp.test/witness"],
            "cosigned": ["cbsa.test/witness"],
            "unwitnessed": ["cbp.test/witness"],
            "waiting_for": "cosignatures",
        }
        async with console(world, record, tmp_path / "without-keys", None) as scene:
            row, witnessing, status = await unwitnessed_state(scene)
        assert status == "incomplete"
        assert 'data-waiting-for="witness keys" data-unwitnessed=""' in row
        assert "no witness key was given" in row
        assert (witnessing["witnesses"], witnessing["waiting_for"]) == ([], "witness keys")
        end = kinds(record).index("end")
        cut_back_to(record, end + 1)  # listed as closed in the server's log: a rollback
        async with console(world, record, tmp_path / "rolled-back", keys) as scene:
            row, witnessing, status = await unwitnessed_state(scene)
        assert status == "failed"
        assert (
            f"{record.name} was closed with {size} events; its record holds {end + 1}: it "
            "was rolled back"
        ) in row
        assert (witnessing["closed"], witnessing["waiting_for"]) == (False, "")


async def test_the_console_shows_a_session_that_has_not_closed(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path) as (world, keys):
        async with applicant_in_call(world) as call:
            await call.end(by=Seat.CBSA)  # the decisions are still to come
            await settled(world)
        record = world.server.app[RECORDS].directory / RoomId(call.interview_id)
        async with console(world, record, tmp_path / "console", keys) as scene:
            row, witnessing, status = await unwitnessed_state(scene)
    assert status == "incomplete"
    assert 'data-waiting-for="close" data-unwitnessed=""' in row
    assert "the interview has not closed" in row
    assert "waiting for the agencies&#39; decisions" in row
    assert sorted(witnessing.pop("cosigned")) == ["cbp.test/witness", "cbsa.test/witness"]
    assert witnessing == {
        "closed": False,
        "final_event": "",
        "witnesses": ["cbsa.test/witness", "cbp.test/witness"],
        "unwitnessed": [],
        "waiting_for": "close",
    }


async def records_verify(record: Path, world: World, keys: dict[str, Cosigner]) -> Completed:
    flags = [part for c in keys.values() for part in ("--witness", c.verifier_key)]
    server_key = world.server.app[RECORDS].signer.verifier_key
    return await asyncio.to_thread(
        nexus_interview, "records", "verify", str(record), "--key", server_key, *flags
    )


async def test_records_verify_fails_a_record_rolled_back_behind_the_log_of_closed_sessions(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    async with witnessed_server(settings, clock, tmp_path) as (world, keys):
        record = await joint_interview(world)
    size = len(kinds(record))
    whole = await records_verify(record, world, keys)
    assert whole.returncode == 0, whole.stderr
    assert f"closed-sessions log: 1 sessions listed, {record.name} with {size} events" in (
        whole.stdout
    )
    end = kinds(record).index("end")
    cut_back_to(record, end + 1)  # cosigned by both witnesses, but listed as closed
    rolled_back = await records_verify(record, world, keys)
    assert rolled_back.returncode == 3 and "VERIFIED" not in rolled_back.stdout
    assert rolled_back.stderr.splitlines() == [
        f"FAILED: {record.name} was closed with {size} events; its record holds {end + 1}: "
        "it was rolled back"
    ]
