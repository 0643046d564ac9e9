"""A whole interview through the server, recorded: the session record verifies with the
same code as `records verify`, each agency's identity opens the media with the `age`
command, and the server's data directory holds no private identity."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.names import Agency, Kind, Seat
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server.appkeys import LIVES, RECORDS
from signalling import messages as m

from .calls import Seated, join_and_call, open_socket, waiting_applicant
from .fakes import World, add_applications, application, nexus_interview
from .media import SyntheticParticipant, wait_for
from .test_recorder import ffprobe_json, probe


def _server_key(world: World) -> tuple[str, str]:
    """Export verifies first: the key the server signs its checkpoints with."""
    return ("--key", world.server.app[RECORDS].signer.verifier_key)


async def export_cli(
    session: Path, identity: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`nexus-interview records export` as an agency or auditor runs it."""
    return await asyncio.to_thread(
        nexus_interview,
        "records",
        "export",
        str(session),
        "--identity",
        str(identity),
        "--out",
        str(out),
        *extra,
    )


def record_closed(session: Path) -> bool:
    """The log ends with ``end`` and the final checkpoint, which follows it shortly after
    (committed in a thread), covers it."""
    events = session / "events.jsonl"
    lines = events.read_bytes().splitlines() if events.exists() else []
    final = session / "checkpoints" / f"{len(lines):010d}.note"
    return bool(lines) and b'"kind":"end"' in lines[-1] and final.exists()


During = Callable[[World, str, dict[Seat, Seated]], Awaitable[None]]
"""What a test does while the call is on and the applicant connected (capture an ID still):
given the interview's id and everyone's socket."""


async def record_a_call(world: World, frames: int = 30, during: During | None = None) -> Path:
    """A consented three-way interview through the server: the applicant waits, both
    officers take it and everyone joins the call; once each has received ``frames`` video
    frames from each other ``during`` runs, then the CBSA officer ends the call. Returns
    its session record directory once the end is sealed by its final checkpoint."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    sockets = {Seat.APPLICANT: await waiting_applicant(world, token)}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        client = await world.client()
        await world.sign_in(client, await world.add_officer(f"{seat}.rec", agency))
        taken = await client.post(
            f"/api/interviews/{interview_id}/take",
            headers={"X-CSRF-Token": await world.csrf(client)},
        )
        assert taken.status == 200, await taken.text()
        sockets[seat] = await open_socket(world, client)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        for seat in Seat:
            await join_and_call(sockets[seat], interview_id, people[seat])
        await wait_for(
            lambda: all(
                people[s].got(o, Kind.VIDEO).frames >= frames
                for s in Seat
                for o in Seat
                if o is not s
            ),
            within=30,
        )
        if during is not None:
            await world.server.app[LIVES].drain()  # the joins are in the interview's life
            await during(world, interview_id, sockets)
        await sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))
        session = world.settings.data_dir / "records" / interview_id
        await wait_for(lambda: record_closed(session))
    finally:
        for person in people.values():
            await person.close()

    return session


async def test_a_recorded_interview_verifies_and_opens_for_each_agency(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert not result.failed, result.problems  # a call's end: the interview has not closed
    assert result.segments >= 3
    await asyncio.to_thread(open_with_each_identity, session, keys)
    for path in world.settings.data_dir.rglob("*"):
        if path.is_file():
            assert b"AGE-SECRET-KEY-" not in path.read_bytes(), path


def open_with_each_identity(session: Path, keys: dict[str, Path]) -> None:
    age = shutil.which("age")
    assert age, "the age command is missing: `make test` installs it"
    segment = sorted(session.glob("cbsa-*.webm.age"))[0]
    for key in keys.values():
        done = subprocess.run(
            [age, "-d", "-i", str(key), str(segment)], capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (WebM) header


async def test_export_writes_one_playable_file_per_participant(
    recorded: tuple[World, dict[str, Path]],
    tmp_path: Path,
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    out = tmp_path / "export"
    done = await export_cli(session, keys["audit"], out, *_server_key(world))
    assert done.returncode == 0, done.stderr
    for seat in Seat:
        frames = await asyncio.to_thread(probe, out / f"{seat}.webm")
        assert frames["vp8"] >= 30 and frames["opus"] >= 30, frames


async def test_shredding_a_recorded_interview_on_the_command_line(
    recorded: tuple[World, dict[str, Path]],
    tmp_path: Path,
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    data_dir = str(world.settings.data_dir)
    shredded = await asyncio.to_thread(
        nexus_interview, "--data-dir", data_dir, "records", "shred", session.name
    )
    assert shredded.returncode == 0, shredded.stderr
    assert "no longer be decrypted" in shredded.stdout
    export = await export_cli(session, keys["cbsa"], tmp_path / "out", *_server_key(world))
    assert export.returncode == 1 and "none of the given identities" in export.stderr
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert not result.failed, result.problems  # a call's end: the interview has not closed
    assert result.shredded == result.segments >= 3


async def test_decisions_are_logged_and_notes_stored_only_encrypted(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    interview_id = session.name
    for client in world.clients:
        info = await (await client.get("/api/session")).json()
        if info["role"] != "officer":
            continue
        agency = info["label"].rsplit(":", 1)[1]
        code = "CA-OTH" if agency == "CBSA" else "US-OTH"
        response = await client.post(
            f"/api/interviews/{interview_id}/decision",
            json={
                "verdict": "refer",
                "reason_codes": [code],
                "notes": f"Secret observation by {agency}: travel history unclear",
            },
            headers={"X-CSRF-Token": info["csrf_token"]},
        )
        assert response.status == 201, await response.text()
    events = (session / "events.jsonl").read_text()
    assert events.count('"kind":"decision"') == 2
    assert "Secret observation" not in events
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    result = await asyncio.to_thread(verify_session, session, [verifier])
    # closed, but given no witness key: nobody outside the server vouches for its length
    assert result.closed and not result.failed, result.problems
    age = shutil.which("age")
    assert age
    done = await asyncio.to_thread(
        subprocess.run,
        [age, "-d", "-i", str(keys["cbp"]), str(session / "notes-cbsa.txt.age")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "Secret observation by CBSA: travel history unclear"


async def test_the_composite_export_shows_everyone_side_by_side_with_the_audio_mixed(
    recorded: tuple[World, dict[str, Path]],
    tmp_path: Path,
) -> None:
    world, keys = recorded
    session = await record_a_call(world)
    out = tmp_path / "export"
    done = await export_cli(session, keys["cbp"], out, "--composite", *_server_key(world))
    assert done.returncode == 0, done.stderr
    assert "composite.webm: everyone side by side" in done.stdout
    info = await asyncio.to_thread(ffprobe_json, out / "composite.webm")
    streams = {stream["codec_name"]: stream for stream in info["streams"]}
    assert (streams["vp8"]["width"], streams["vp8"]["height"]) == (3 * 640, 480)
    assert int(streams["vp8"]["nb_read_frames"]) >= 15  # 15 fps, at least a second
    assert int(streams["opus"]["nb_read_frames"]) > 0
    # one timeline: from the first segment's start to the last one's end, by the log
    segments = [
        json.loads(line)
        for line in (session / "events.jsonl").read_text().splitlines()
        if '"kind":"segment"' in line
    ]
    first = min(event["started_at_ms"] for event in segments)
    last = max(event["started_at_ms"] + event["duration_ms"] for event in segments)
    assert abs(float(info["format"]["duration"]) - (last - first) / 1000) < 0.5
